#!/usr/bin/env python3
"""Writes the fixtures of sextant-text's DOCX, EPUB, CSV and e-mail extraction tests.

    python3 -m venv .venv-formats
    .venv-formats/bin/pip install python-docx==1.2.0 EbookLib==0.20 msoffcrypto-tool==6.1.0
    .venv-formats/bin/python scripts/make-format-fixtures.py
    # -> crates/sextant-text/tests/fixtures/formats/*

The files are written by the libraries people use to make them (python-docx, EbookLib, Python's
csv, email and mailbox modules), then zip archives are rewritten with fixed timestamps so a run
gives byte-identical files (except encrypted.docx, whose salt is random). They are committed;
the tests never run this script. What each holds:

- report.docx         core properties (title with an em dash, author, dates in +02:00), Heading 1/2,
                      a bulleted list, a paragraph with a tab and a line break, a paragraph that
                      starts with '#', XML-escaped characters, an empty paragraph, a 3x3 table.
- untitled.docx       no core title: the first Heading 1 is the title; a Title-style paragraph.
- encrypted.docx      a one-paragraph package encrypted with the password "sextant" (ECMA-376
                      agile encryption in an OLE2 compound file, as Word writes it).
- no-document.docx    a zip without word/document.xml.
(The tests derive a truncated and a malformed copy of report.docx themselves.)
- book.epub           EPUB 3 (EbookLib): title, two authors, language; the manifest lists chapter
                      two before chapter one, the spine reads one, two; a chapter file name with a
                      space; the navigation document is not in the spine.
- drm.epub            book.epub with META-INF/encryption.xml listing chapter one.
- no-spine.epub       a package whose spine lists only an image.
- people.csv          csv module, UTF-8 with a byte-order mark, \r\n endings: a quoted comma,
                      doubled quotes, a value spanning two lines, an empty cell, numbers.
- people.tsv          the same rows, tab-separated, no BOM, \n endings.
- ragged.csv          line 3 has one field too many.
- latin1.csv          line 3 holds a Latin-1 byte (not UTF-8).
- message.eml         multipart/mixed: multipart/alternative (plain, HTML) and a PDF attachment;
                      an RFC 2047 subject, a Date in +02:00, Cc, In-Reply-To.
- html-only.eml       a quoted-printable HTML body and no plain part.
- archive.mbox        mailbox.mbox with three messages: plain text, a body line "From ..."
                      (written as ">From ..."), a base64 body and no Message-ID.
"""

import csv
import datetime
import email.utils
import io
import mailbox
import os
import sys
import time
import zipfile
from email.message import EmailMessage

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "sextant-text", "tests",
                   "fixtures", "formats")
FIXED = (2024, 1, 1, 0, 0, 0)


def path(name):
    return os.path.join(OUT, name)


def normalise_zip(src_bytes, replace=None, add=None):
    """The archive with fixed timestamps, entries in the same order (so an EPUB's stored
    `mimetype` stays first); `replace` maps names to new content, `add` appends entries."""
    replace = replace or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src_bytes)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = replace.get(info.filename, zin.read(info.filename))
            new = zipfile.ZipInfo(info.filename, date_time=FIXED)
            new.compress_type = info.compress_type
            new.external_attr = 0o644 << 16
            zout.writestr(new, data)
        for name, data in (add or {}).items():
            new = zipfile.ZipInfo(name, date_time=FIXED)
            new.compress_type = zipfile.ZIP_DEFLATED
            new.external_attr = 0o644 << 16
            zout.writestr(new, data)
    return out.getvalue()


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


def docx_bytes(doc):
    buf = io.BytesIO()
    doc.save(buf)
    return normalise_zip(buf.getvalue())


def make_docx():
    import docx
    from docx.enum.text import WD_BREAK

    tz = datetime.timezone(datetime.timedelta(hours=2))
    doc = docx.Document()
    props = doc.core_properties
    props.title = "Quarterly Report — Q3"
    props.author = "Ada Lovelace"
    props.subject = "Sales"
    props.keywords = "revenue, growth"
    props.created = datetime.datetime(2024, 10, 1, 9, 0, 0, tzinfo=tz)
    props.modified = datetime.datetime(2024, 10, 2, 17, 30, 0, tzinfo=tz)
    props.last_modified_by = "Ada Lovelace"
    props.revision = 2
    doc.add_heading("Summary", level=1)
    doc.add_paragraph("Revenue grew by 12% in the third quarter.")
    doc.add_paragraph("Costs & margins stayed < plan.")
    doc.add_paragraph("")
    doc.add_heading("Details", level=2)
    doc.add_paragraph("North region", style="List Bullet")
    doc.add_paragraph("South region", style="List Bullet")
    p = doc.add_paragraph("Name:\tAda")
    p.add_run().add_break(WD_BREAK.LINE)
    p.add_run("Role: analyst")
    doc.add_paragraph("# not a heading")
    table = doc.add_table(rows=3, cols=3)
    for r, row in enumerate([("Region", "Q2", "Q3"), ("North", "10", "12"), ("South", "8", "9")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    doc.add_paragraph("End of report.")
    report = docx_bytes(doc)
    write("report.docx", report)

    doc = docx.Document()
    doc.core_properties.title = ""
    doc.core_properties.author = ""
    doc.core_properties.created = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    doc.core_properties.modified = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    doc.add_paragraph("A Draft", style="Title")
    doc.add_heading("Field Notes", level=1)
    doc.add_paragraph("Owls hunt at night.")
    write("untitled.docx", docx_bytes(doc))

    from msoffcrypto.format.ooxml import OOXMLFile

    # A minimal package (the template's styles and theme would triple the file for nothing).
    minimal = io.BytesIO()
    with zipfile.ZipFile(minimal, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("[Content_Types].xml", date_time=FIXED), CONTENT_TYPES)
        z.writestr(zipfile.ZipInfo("_rels/.rels", date_time=FIXED), PACKAGE_RELS)
        z.writestr(zipfile.ZipInfo("word/document.xml", date_time=FIXED), MINIMAL_DOCUMENT)
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(minimal.getvalue())).encrypt("sextant", out)
    write("encrypted.docx", out.getvalue())

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("[Content_Types].xml", date_time=FIXED), CONTENT_TYPES)
    write("no-document.docx", buf.getvalue())


CONTENT_TYPES = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml"
 ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
</Types>"""
PACKAGE_RELS = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="word/document.xml"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>
</Relationships>"""
MINIMAL_DOCUMENT = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
<w:body><w:p><w:r><w:t>Secret plans.</w:t></w:r></w:p></w:body></w:document>"""


CHAPTER_ONE = """<h1>Chapter One</h1>
<p>Call me Ishmael. Some years ago I went to sea.</p>
<p>The harbour smelled of tar &amp; salt.</p>"""

CHAPTER_TWO = """<h1>Chapter Two</h1>
<p>The whale surfaced at dawn.</p>
<ul><li>harpoons</li><li>rope</li></ul>"""


def make_epub():
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("urn:uuid:0b7e6f52-2d38-4c1c-9c84-5ab3a1c5e001")
    book.set_title("The Voyage")
    book.set_language("en")
    book.add_author("Jules Example")
    book.add_author("Ann Other")
    two = epub.EpubHtml(title="Chapter Two", file_name="text/chapter two.xhtml", lang="en")
    two.content = CHAPTER_TWO
    one = epub.EpubHtml(title="Chapter One", file_name="text/ch1.xhtml", lang="en")
    one.content = CHAPTER_ONE
    book.add_item(two)
    book.add_item(one)
    book.toc = (one, two)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [one, two]
    buf = io.BytesIO()
    epub.write_epub(buf, book, {"mtime": datetime.datetime(2024, 1, 1)})
    data = normalise_zip(buf.getvalue())
    write("book.epub", data)

    encryption = b"""<?xml version="1.0" encoding="UTF-8"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
            xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
  <enc:EncryptedData>
    <enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
    <enc:CipherData><enc:CipherReference URI="EPUB/text/ch1.xhtml"/></enc:CipherData>
  </enc:EncryptedData>
</encryption>"""
    write("drm.epub", normalise_zip(data, add={"META-INF/encryption.xml": encryption}))

    container = b"""<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OPS/book.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
    opf = b"""<?xml version="1.0"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Pictures</dc:title></metadata>
  <manifest><item id="img" href="cover.png" media-type="image/png"/></manifest>
  <spine><itemref idref="img"/></spine>
</package>"""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype", date_time=FIXED), b"application/epub+zip")
        for name, data in [("META-INF/container.xml", container), ("OPS/book.opf", opf),
                           ("OPS/cover.png", b"\x89PNG\r\n\x1a\n")]:
            info = zipfile.ZipInfo(name, date_time=FIXED)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    write("no-spine.epub", buf.getvalue())


ROWS = [
    ["id", "name", "born", "bio", "score"],
    ["ada", "Ada Lovelace", "1815", "Wrote the first program, for the Analytical Engine.", "9.5"],
    ["alan", "Turing, Alan", "1912", 'Asked "can machines think?"', "10"],
    ["grace", "Grace Hopper", "1906", "Built the first compiler.\nCoined \"debugging\".", ""],
    ["émilie", "Émilie du Châtelet", "1706", "Translated Newton's Principia.", "007"],
]


def make_csv():
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(ROWS)
    write("people.csv", ("\ufeff" + buf.getvalue()).encode("utf-8"))

    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerows(ROWS)
    write("people.tsv", buf.getvalue().encode("utf-8"))

    write("ragged.csv", b"a,b,c\n1,2,3\n4,5,6,7\n8,9,10\n")
    write("latin1.csv", b"city,country\nParis,France\nK\xf6ln,Germany\n")


def fixed_date(hours, *args):
    tz = datetime.timezone(datetime.timedelta(hours=hours))
    return email.utils.format_datetime(datetime.datetime(*args, tzinfo=tz))


def set_boundaries(msg, prefix):
    for i, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=={prefix}-{i}==")


def make_email():
    msg = EmailMessage()
    msg["From"] = "Ada Lovelace <ada@example.com>"
    msg["To"] = "Charles Babbage <charles@example.com>, team@example.com"
    msg["Cc"] = "Mary Somerville <mary@example.com>"
    msg["Subject"] = "Notes on the Analytical Engine — draft"
    msg["Date"] = fixed_date(2, 2024, 3, 5, 14, 30, 0)
    msg["Message-ID"] = "<notes-1@example.com>"
    msg["In-Reply-To"] = "<question-7@example.com>"
    msg.set_content("Dear Charles,\n\nThe engine can compute Bernoulli numbers.\n\nAda\n")
    msg.add_alternative("<html><body><p>Dear Charles,</p><p>The engine can compute "
                        "<b>Bernoulli numbers</b>.</p><p>Ada</p></body></html>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf",
                       filename="table-of-numbers.pdf")
    set_boundaries(msg, "notes")
    write("message.eml", msg.as_bytes())

    msg = EmailMessage()
    msg["From"] = "news@example.com"
    msg["To"] = "reader@example.com"
    msg["Subject"] = "Weekly digest"
    msg["Date"] = fixed_date(0, 2024, 4, 1, 8, 0, 0)
    msg["Message-ID"] = "<digest-14@example.com>"
    msg.set_content("<html><head><style>p{color:red}</style></head><body><h1>This week</h1>"
                    "<p>Café prices rose \u2014 again.</p></body></html>", subtype="html", cte="quoted-printable")
    write("html-only.eml", msg.as_bytes())

    box_path = path("archive.mbox")
    if os.path.exists(box_path):
        os.remove(box_path)
    box = mailbox.mbox(box_path)
    messages = []
    m = EmailMessage()
    m["From"] = "alice@example.com"
    m["To"] = "bob@example.com"
    m["Subject"] = "Lunch"
    m["Date"] = fixed_date(-5, 2024, 5, 1, 11, 0, 0)
    m["Message-ID"] = "<lunch-1@example.com>"
    m.set_content("Noon at the usual place?\n")
    messages.append(m)
    m = EmailMessage()
    m["From"] = "bob@example.com"
    m["To"] = "alice@example.com"
    m["Subject"] = "Re: Lunch"
    m["Date"] = fixed_date(-5, 2024, 5, 1, 11, 5, 0)
    m["Message-ID"] = "<lunch-2@example.com>"
    m["In-Reply-To"] = "<lunch-1@example.com>"
    m.set_content("Yes.\nFrom the station I walk ten minutes.\n")
    messages.append(m)
    m = EmailMessage()
    m["From"] = "carol@example.com"
    m["To"] = "alice@example.com"
    m["Subject"] = "Grüße"
    m["Date"] = fixed_date(1, 2024, 5, 2, 9, 0, 0)
    m.set_content("Schöne Grüße aus Köln.\n", cte="base64")
    messages.append(m)
    for i, m in enumerate(messages):
        mm = mailbox.mboxMessage(m)
        mm.set_from("MAILER-DAEMON", time.gmtime(1714560000 + 60 * i))
        box.add(mm)
    box.flush()
    box.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    make_docx()
    make_epub()
    make_csv()
    make_email()
    print("wrote", sorted(os.listdir(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
