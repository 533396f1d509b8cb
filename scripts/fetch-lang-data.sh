#!/usr/bin/env bash
# Builds the multilingual data for language detection and per-language BM25 from Debian's
# translated manual pages (idempotent):
#   data/text/manpages-src/   debs/*.deb (apt-get download, nothing is installed), the man pages
#                             and copyright files extracted from them (extracted/<package>/usr/...),
#                             packages.tsv (package, version, sha256, language, man directory),
#                             rendered/<package>_<version>.jsonl.gz (groff's plain-text output
#                             per page, a cache)
#   data/text/langid/         samples.jsonl: ~300 sentences and ~300 paragraphs per language,
#                             labelled with the ISO 639-1 code of the package's language;
#                             meta.json
#   data/text/man-XX/         BEIR sets per language (NAME description -> rest of the page):
#                             man-de, man-fr, man-es, every other language with >= 300 usable
#                             pages, and man-en (the English originals of the same pages)
#   data/text/splits/man-en-train/, data/text/splits/man-en-eval/
#                             man-en split by query for fine-tuning (scripts/text_data.py split,
#                             seed 11, 50/50): train has qrels/train.tsv, eval qrels/test.tsv,
#                             both the full man-en corpus; queries whose documents are the same
#                             text or near duplicates (word-5-shingle Jaccard >= 0.5) stay on
#                             one side, so no eval query's document is a training positive.
#                             In splits/, not data/text/man-*: bench/peers/bm25_lang.py and
#                             lang_data.py summary take every data/text/man-* as a language set
# Sources (Debian bookworm, whatever version apt offers; versions and sha256 go to
# packages.tsv and the meta.json files):
#   translations: manpages-l10n's binary packages manpages-{cs,da,de,el,es,fi,fr,hu,id,it,mk,
#   nb,nl,pl,pt-br,ro,ru,sr,sv,uk,vi} and their -dev packages where they exist, plus
#   manpages-ja(-dev) (JM project), manpages-zh (CMPP; zh_CN pages only) and manpages-tr;
#   English: manpages, manpages-dev (Linux man-pages project) and the packages in EN_EXTRA,
#   chosen because they ship the English originals of most translated pages (coreutils,
#   util-linux, systemd, grub, ...). Debian has no Korean man pages.
# Rendering: groff (groff-base, installed with apt-get when missing) to UTF-8 plain text, see
# scripts/lang_data.py, which does all conversion and sampling and documents every rule;
# docs/datasets.md describes the sets and their biases.
#
# Usage: bash scripts/fetch-lang-data.sh [--force] [--seed S] [--per-kind N] [--min-pages N]
#   --force   re-extract the packages and rebuild every output (downloads are kept when their
#             version is still the candidate)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
SRC="$ROOT/data/text/manpages-src"
FORCE=0
BUILD_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE=1; BUILD_ARGS+=(--force); shift;;
        --seed|--per-kind|--min-pages) BUILD_ARGS+=("$1" "$2"); shift 2;;
        *) echo "unknown argument: $1" >&2; exit 2;;
    esac
done

# language code, man directory under usr/share/man ("" = English, man<N>/ directly), packages
TRANSLATIONS=(
  "cs cs manpages-cs manpages-cs-dev"
  "da da manpages-da manpages-da-dev"
  "de de manpages-de manpages-de-dev"
  "el el manpages-el"
  "es es manpages-es manpages-es-dev"
  "fi fi manpages-fi"
  "fr fr manpages-fr manpages-fr-dev"
  "hu hu manpages-hu"
  "id id manpages-id"
  "it it manpages-it manpages-it-dev"
  "ja ja manpages-ja manpages-ja-dev"
  "ko ko manpages-ko"
  "mk mk manpages-mk"
  "nb nb manpages-nb"
  "nl nl manpages-nl manpages-nl-dev"
  "pl pl manpages-pl manpages-pl-dev"
  "pt pt_BR manpages-pt-br manpages-pt-br-dev"
  "ro ro manpages-ro"
  "ru ru manpages-ru manpages-ru-dev"
  "sr sr manpages-sr"
  "sv sv manpages-sv"
  "tr tr manpages-tr"
  "uk uk manpages-uk manpages-uk-dev"
  "vi vi manpages-vi"
  "zh zh_CN manpages-zh"
  "en - manpages manpages-dev"
)
# Packages shipping the English originals of translated pages (for man-en and for dropping
# untranslated paragraphs from the samples). Picked once by looking up which installed package
# owns each translated page name (dpkg -S); big packages that own only one or two of them
# (locales, groff, perl-base, openssl) are left out.
EN_EXTRA=(coreutils util-linux util-linux-extra systemd udev e2fsprogs gettext gettext-base
  openssh-client gzip bsdextrautils binutils-common net-tools bsdutils mount bzip2 less diffutils
  tar findutils grep sed bash ncurses-bin zstd xz-utils procps psmisc passwd login man-db dpkg apt
  debianutils sysvinit-utils kmod fdisk dosfstools mtools kbd nano at cron iputils-ping wdiff flex
  bison grub-common grub2-common cpio patch m4 make gawk time hostname file ed bc usbutils
  pciutils parted psutils recutils procmail finger gpm vlock xinit x11-xserver-utils
  init-system-helpers libc-bin uuid-runtime wget)
TRANSLATIONS+=("en - ${EN_EXTRA[*]}")

if ! command -v groff >/dev/null || ! command -v preconv >/dev/null || ! command -v tbl >/dev/null; then
    echo "installing groff-base"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends groff-base || { apt-get update; apt-get install -y --no-install-recommends groff-base; }
fi

mkdir -p "$SRC/debs"
# candidate versions of all packages at once (one apt-cache call; a package apt does not know
# is absent from its output)
declare -A CANDIDATE
load_candidates() {
    local all=() entry lang mandir pkgs name ver
    for entry in "${TRANSLATIONS[@]}"; do read -r lang mandir pkgs <<<"$entry"; all+=($pkgs); done
    while read -r name ver; do CANDIDATE[$name]="$ver"; done < <(
        apt-cache policy "${all[@]}" 2>/dev/null | awk '/^[^ ].*:$/{sub(/:$/, ""); p=$0} /Candidate:/{print p, $2}')
}
load_candidates
candidate() { echo "${CANDIDATE[$1]:-}"; }
UPDATED=0
TSV="$SRC/packages.tsv.tmp"
printf 'package\tversion\tsha256\tdeb\tlang\tmandir\n' >"$TSV"
SKIPPED=()
for entry in "${TRANSLATIONS[@]}"; do
    read -r lang mandir pkgs <<<"$entry"
    for pkg in $pkgs; do
        ver="$(candidate "$pkg")"
        if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
            if [ "$UPDATED" = 0 ]; then apt-get update >/dev/null; UPDATED=1; load_candidates; ver="$(candidate "$pkg")"; fi
            if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then SKIPPED+=("$pkg"); continue; fi
        fi
        # apt-get download names files with the epoch's ':' written as %3a
        deb="$SRC/debs/${pkg}_${ver/:/%3a}_all.deb"
        [ -f "$deb" ] || deb="$(ls "$SRC/debs/${pkg}_${ver/:/%3a}"_*.deb 2>/dev/null | head -1 || true)"
        if [ -z "$deb" ] || [ ! -f "$deb" ]; then
            echo "downloading $pkg $ver"
            (cd "$SRC/debs" && apt-get download -q "$pkg=$ver" 2>&1 | grep -v -e unsandboxed -e '^Get:' || true)
            deb="$(ls "$SRC/debs/${pkg}_${ver/:/%3a}"_*.deb 2>/dev/null | head -1 || true)"
            [ -n "$deb" ] && [ -f "$deb" ] || { echo "apt-get download $pkg=$ver failed" >&2; exit 1; }
        fi
        # older downloads of the same package are stale
        for old in "$SRC/debs/${pkg}_"*.deb; do [ "$old" = "$deb" ] || rm -f "$old"; done
        sum="$(sha256sum "$deb" | cut -d' ' -f1)"
        dest="$SRC/extracted/$pkg"
        if [ "$FORCE" = 1 ] || [ ! -f "$dest/.sha256" ] || [ "$(cat "$dest/.sha256")" != "$sum" ]; then
            rm -rf "$dest"
            mkdir -p "$dest"
            # only the man pages and the copyright file; nothing else of the package is needed
            # (tar fails on the copyright pattern when /usr/share/doc/$pkg is a symlink to a
            # sibling package's directory; what matched is extracted all the same)
            dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dest" --wildcards \
                './usr/share/man/*' "./usr/share/doc/$pkg/copyright" 2>/dev/null || true
            [ -d "$dest/usr/share/man" ] || { echo "$pkg: no usr/share/man in $deb" >&2; exit 1; }
            echo "$sum" >"$dest/.sha256"
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$pkg" "$ver" "$sum" "debs/$(basename "$deb")" "$lang" "$mandir" >>"$TSV"
    done
done
mv "$TSV" "$SRC/packages.tsv"
[ ${#SKIPPED[@]} -eq 0 ] || echo "not in this apt source (skipped): ${SKIPPED[*]}"
printf '%s\n' "${SKIPPED[@]}" >"$SRC/skipped.txt"

"$PY" "$ROOT/scripts/lang_data.py" build --src "$SRC" --out "$ROOT/data/text" "${BUILD_ARGS[@]}"

# Train/eval halves of the judged sets in SPLIT_SETS for fine-tuning experiments (text_data.py
# split; its docstring and each half's meta.json give the rules). Redone when the source set,
# the script or the parameters change, or with --force.
SPLIT_SETS=(man-en)
SPLIT_ARGS=(--seed 11 --eval-fraction 0.5 --near-dup 0.5)
mkdir -p "$ROOT/data/text/splits"
for set in "${SPLIT_SETS[@]}"; do
    SRCSET="$ROOT/data/text/$set"
    S="$ROOT/data/text/splits/$set"  # the halves are $S-train and $S-eval
    [ -f "$SRCSET/qrels/test.tsv" ] || { echo "$set: not built, no train/eval split"; continue; }
    STAMP="${SPLIT_ARGS[*]} script=$(cksum <"$ROOT/scripts/text_data.py" | cut -d' ' -f1) source=$(cat "$SRCSET/corpus.jsonl" "$SRCSET/queries.jsonl" "$SRCSET/qrels/test.tsv" | cksum | cut -d' ' -f1)"
    if [ "$FORCE" = 0 ] && [ -f "$S-train/.stamp" ] && [ "$(cat "$S-train/.stamp")" = "$STAMP" ] \
        && [ -f "$S-eval/.stamp" ] && [ "$(cat "$S-eval/.stamp")" = "$STAMP" ] \
        && [ -f "$S-train/qrels/train.tsv" ] && [ -f "$S-eval/qrels/test.tsv" ]; then
        echo "$set-train, $set-eval: already built ($STAMP)"
        "$PY" "$ROOT/scripts/text_data.py" summary "$S-train"
        "$PY" "$ROOT/scripts/text_data.py" summary "$S-eval"
    else
        echo "$set: splitting into $S-train and $S-eval"
        mkdir -p "$S-train" "$S-eval"
        rm -f "$S-train/.stamp" "$S-eval/.stamp"
        "$PY" "$ROOT/scripts/text_data.py" split "$SRCSET" --out-train "$S-train" --out-eval "$S-eval" "${SPLIT_ARGS[@]}"
        echo "$STAMP" >"$S-train/.stamp"
        echo "$STAMP" >"$S-eval/.stamp"
    fi
done
