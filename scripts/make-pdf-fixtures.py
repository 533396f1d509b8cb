#!/usr/bin/env python3
"""Writes the small PDF fixtures of sextant-text's PDF extraction tests.

    python3 scripts/make-pdf-fixtures.py   # -> crates/sextant-text/tests/fixtures/pdf/*.pdf

Standard library only, and deterministic (no dates, fixed file ids), so running it again gives
byte-identical files; the PDFs are committed and the tests never run this script. Each file is
written the way real producers write them (compressed content streams, a cross-reference
table, an Info dictionary) but small enough to read in a hex dump:

- three-pages.pdf  3 pages of Helvetica (a standard font: no widths in the file), Flate-compressed
                   content streams, a UTF-16 /Title with an em dash; page 2 has a WinAnsi "é",
                   page 3 spaces words by TJ displacements (as TeX does) with a kerned "Wood".
- ligatures.pdf    Times-Roman whose /Differences encoding maps codes to the glyphs /fi, /fl and
                   /ffi (as TeX's fonts do), and words hyphenated at line ends; no Info dictionary.
- hazards.pdf      what the parser cannot take as it is: page 1 draws a form XObject that draws
                   itself (unbounded recursion), page 2 shows text with the ' and " operators,
                   page 3 has no /MediaBox.
- no-text.pdf      one page that only draws lines (what a scanned, image-only page gives a text
                   extractor: nothing).
- encrypted.pdf    three-pages.pdf's first page under the standard security handler (RC4, 40-bit)
                   with the user password "sextant".
- truncated.pdf    the first 40% of three-pages.pdf: its cross-reference table is gone, page 1
                   survives.
- corrupt.pdf      the first 25% of three-pages.pdf: no page survives.
"""

import hashlib
import os
import zlib

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "sextant-text", "tests", "fixtures", "pdf")

# 32-byte padding of the standard security handler (PDF 32000-1, 7.6.3.3).
PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
FILE_ID = hashlib.md5(b"sextant pdf fixture").digest()


def rc4(key, data):
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for b in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(b ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


class Encryption:
    """Standard security handler, revision 2 (RC4 with a 40-bit key)."""

    def __init__(self, user, owner, permissions=-44):
        padded = lambda pw: (pw.encode("latin-1") + PAD)[:32]
        owner_key = hashlib.md5(padded(owner)).digest()[:5]
        self.o = rc4(owner_key, padded(user))
        self.p = permissions
        p_bytes = (permissions & 0xFFFFFFFF).to_bytes(4, "little")
        self.key = hashlib.md5(padded(user) + self.o + p_bytes + FILE_ID).digest()[:5]
        self.u = rc4(self.key, PAD)

    def object_key(self, num):
        return hashlib.md5(self.key + num.to_bytes(3, "little") + b"\0\0").digest()[:10]

    def dictionary(self):
        return b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (
            self.o.hex().encode(),
            self.u.hex().encode(),
            self.p,
        )


def text_string(s, key=None):
    """A PDF text string in hex: ASCII as it is, else UTF-16BE with a byte-order mark;
    encrypted with the object's key when there is one."""
    try:
        raw = s.encode("ascii")
    except UnicodeEncodeError:
        raw = b"\xfe\xff" + s.encode("utf-16-be")
    if key:
        raw = rc4(key, raw)
    return b"<" + raw.hex().upper().encode() + b">"


def write_pdf(name, pages, fonts, title=None, encryption=None, self_drawing_form=False, no_media_box=()):
    """pages: list of content streams (bytes); fonts: {resource name: font dictionary};
    self_drawing_form: give every page a form XObject /X1 whose own resources name it /X1;
    no_media_box: indexes of pages written without a /MediaBox."""
    objects = []  # (body bytes, stream bytes or None)

    def add(body, stream=None):
        objects.append((body, stream))
        return len(objects)

    catalog = add(None)
    page_tree = add(None)
    font_refs = b" ".join(b"/%s %d 0 R" % (k.encode(), add(v)) for k, v in fonts.items())
    resources = b"/Font << %s >>" % font_refs
    if self_drawing_form:
        form = len(objects) + 1
        body = b"/X1 Do\n"
        add(
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] "
            b"/Resources << /XObject << /X1 %d 0 R >> >> /Length %d >>" % (form, len(body)),
            body,
        )
        resources += b" /XObject << /X1 %d 0 R >>" % form
    kids = []
    for i, content in enumerate(pages):
        data = zlib.compress(content, 9)
        c = add(b"<< /Length %d /Filter /FlateDecode >>" % len(data), data)
        media_box = b"" if i in no_media_box else b"/MediaBox [0 0 612 792] "
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R %s/Resources << %s >> /Contents %d 0 R >>"
                % (page_tree, media_box, resources, c)
            )
        )
    objects[catalog - 1] = (b"<< /Type /Catalog /Pages %d 0 R >>" % page_tree, None)
    objects[page_tree - 1] = (
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)),
        None,
    )
    info = None
    if title:
        key = encryption.object_key(len(objects) + 1) if encryption else None
        info = add(
            b"<< /Title %s /Producer %s >>"
            % (text_string(title, key), text_string("make-pdf-fixtures.py", key))
        )
    encrypt = add(encryption.dictionary()) if encryption else None

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, (body, stream) in enumerate(objects, start=1):
        if encryption and num != encrypt:
            key = encryption.object_key(num)
            if stream is not None:
                stream = rc4(key, stream)
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body
        if stream is not None:
            out += b"\nstream\n" + stream + b"\nendstream"
        out += b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info:
        trailer += b" /Info %d 0 R" % info
    if encrypt:
        trailer += b" /Encrypt %d 0 R" % encrypt
    trailer += b" /ID [<%s> <%s>] >>" % (FILE_ID.hex().encode(), FILE_ID.hex().encode())
    out += b"trailer\n" + trailer + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(out)
    return bytes(out)


HELVETICA = {
    "F1": b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    "F2": b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
}

THREE_PAGES = [
    b"BT /F2 16 Tf 72 740 Td (Birds of Prey) Tj\n"
    b"/F1 11 Tf 0 -30 Td 14 TL\n"
    b"(The falcon is a bird of prey that hunts small birds in flight.) Tj\n"
    b"T* (Falcons nest on cliffs and on tall buildings.) Tj ET\n",
    b"BT /F2 16 Tf 72 740 Td (Freshwater Fish) Tj\n"
    b"/F1 11 Tf 0 -30 Td 14 TL\n"
    b"(Trout are freshwater fish of cold rivers and lakes.) Tj\n"
    b"T* (Anglers eat them in a caf\\351 by the river.) Tj ET\n",
    b"BT /F2 16 Tf 72 740 Td (Trees) Tj\n"
    b"/F1 11 Tf 0 -30 Td 14 TL\n"
    b"[(The) -278 (oak) -278 (is) -278 (a) -278 (tree;) -278 (its) -278 (fruit) -278 (is) -278 (the) -278 (acorn.)] TJ\n"
    b"T* [(W) 80 (ood) -278 (from) -278 (oak) -278 (makes) -278 (strong) -278 (barrels.)] TJ ET\n",
]

LIGATURES = [
    b"BT /F1 12 Tf 72 720 Td 15 TL\n"
    b"(The \\001nal \\002ight was e\\003cient.) Tj\n"
    b"T* (Typesetters break long words with hyphen-) Tj\n"
    b"T* (ation at the end of a line; hyphenation is undone) Tj\n"
    b"T* (when the joined word occurs elsewhere. A compound) Tj\n"
    b"T* (such as well-) Tj\n"
    b"T* (known keeps its hyphen.) Tj ET\n",
]

HAZARDS = [
    b"BT /F1 11 Tf 72 720 Td (This page draws a form that draws itself.) Tj ET /X1 Do\n",
    b"BT /F1 11 Tf 72 720 Td 14 TL (Shown by Tj.) Tj (Shown by the quote operator.) '\n"
    b"2 0 (Shown by the double quote operator.) \" ET\n",
    b"BT /F1 11 Tf 72 720 Td (A page without a media box.) Tj ET\n",
]

TIMES_LIGATURES = {
    "F1": b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding "
    b"<< /Type /Encoding /BaseEncoding /WinAnsiEncoding /Differences [1 /fi /fl /ffi] >> >>",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    title = "Field Guide \u2014 Birds, Fish and Trees"
    three = write_pdf("three-pages.pdf", THREE_PAGES, HELVETICA, title=title)
    write_pdf("ligatures.pdf", LIGATURES, TIMES_LIGATURES)
    write_pdf("hazards.pdf", HAZARDS, HELVETICA, self_drawing_form=True, no_media_box=(2,))
    write_pdf("no-text.pdf", [b"1 w 72 72 m 540 720 l S 72 720 m 540 72 l S\n"], {})
    write_pdf(
        "encrypted.pdf",
        THREE_PAGES[:1],
        HELVETICA,
        title=title,
        encryption=Encryption(user="sextant", owner="owner"),
    )
    with open(os.path.join(OUT, "truncated.pdf"), "wb") as f:
        f.write(three[: len(three) * 2 // 5])
    with open(os.path.join(OUT, "corrupt.pdf"), "wb") as f:
        f.write(three[: len(three) // 4])


if __name__ == "__main__":
    main()
