//! CSV files, e-mail messages and mailboxes: records, keys, payloads and byte offsets for the
//! fixtures Python's csv, email and mailbox modules wrote (`scripts/make-format-fixtures.py`),
//! and errors that name the line.

use proptest::prelude::*;
use serde_json::{json, Value};
use sextant_text::extract::{
    extract, extract_bytes, extract_records, records, CsvOptions, ExtractError, Format, Record,
    RecordOptions,
};

use super::archives::fixture;

fn csv(bytes: &[u8], csv: CsvOptions) -> Vec<Record> {
    extract_records(Format::Csv, bytes, &RecordOptions { csv }).unwrap()
}

/// Every stretch of text copied from the source maps back to the same bytes, and every other
/// stretch to bytes inside the record.
fn assert_maps_into(source: &[u8], r: &Record) {
    let text = &r.extracted.text;
    for run in r.extracted.map.runs() {
        let t = &text[run.text_start..run.text_start + run.text_len];
        let s = &source[run.source_start..run.source_start + run.source_len];
        assert!(
            run.source_start >= r.range.start && run.source_start + run.source_len <= r.range.end,
            "{t:?} maps outside record {}",
            r.key
        );
        if run.text_len == run.source_len {
            assert_eq!(t.as_bytes(), s, "record {}", r.key);
        }
    }
}

#[test]
fn csv_rows_are_cards_with_typed_payloads_and_offsets() {
    let bytes = fixture("people.csv");
    let rows = csv(&bytes, CsvOptions::default());
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["1", "2", "3", "4"]);
    assert_eq!(
        rows[1].extracted.text,
        "id: alan\nname: Turing, Alan\nborn: 1912\nbio: Asked \"can machines think?\"\nscore: 10"
    );
    assert_eq!(
        Value::Object(rows[0].extracted.payload.clone()),
        json!({"id": "ada", "name": "Ada Lovelace", "born": 1815,
               "bio": "Wrote the first program, for the Analytical Engine.", "score": 9.5})
    );
    // An empty cell is left out; "007" is not a number.
    assert!(!rows[2].extracted.payload.contains_key("score"));
    assert_eq!(rows[3].extracted.payload["score"], "007");
    // Slicing the file at a record's range gives its row (the BOM and line breaks are not in
    // it); a value spanning two lines stays in one record.
    let row = |i: usize| String::from_utf8(bytes[rows[i].range.clone()].to_vec()).unwrap();
    assert_eq!(
        row(0),
        "ada,Ada Lovelace,1815,\"Wrote the first program, for the Analytical Engine.\",9.5"
    );
    assert_eq!(
        row(2),
        "grace,Grace Hopper,1906,\"Built the first compiler.\nCoined \"\"debugging\"\".\","
    );
    assert!(row(3).starts_with("émilie,"));
    for r in &rows {
        assert_maps_into(&bytes, r);
        assert_eq!(r.extracted.title, None);
    }
    // A value with doubled quotes maps to its whole quoted stretch.
    let text = &rows[1].extracted.text;
    let at = text.find("Asked").unwrap();
    let src = rows[1]
        .extracted
        .map
        .range_to_source(at..text.find("\nscore").unwrap());
    assert_eq!(&bytes[src], b"Asked \"\"can machines think?\"\"");

    // The TSV file gives the same records (its delimiter is sniffed).
    let tsv = fixture("people.tsv");
    let tsv_rows = csv(&tsv, CsvOptions::default());
    for (a, b) in rows.iter().zip(&tsv_rows) {
        assert_eq!(a.extracted.text, b.extracted.text);
        assert_eq!(a.extracted.payload, b.extracted.payload);
        assert_maps_into(&tsv, b);
    }
}

#[test]
fn csv_columns_ids_titles_and_groups() {
    let bytes = fixture("people.csv");
    let options = CsvOptions {
        text_columns: vec!["bio".into()],
        title_column: Some("name".into()),
        id_column: Some("ID".into()),
        ..CsvOptions::default()
    };
    let rows = csv(&bytes, options.clone());
    assert_eq!(rows[0].key, "ada");
    assert_eq!(rows[3].key, "émilie");
    assert_eq!(rows[0].extracted.title.as_deref(), Some("Ada Lovelace"));
    assert_eq!(
        rows[2].extracted.text,
        "Built the first compiler.\nCoined \"debugging\"."
    );
    assert!(!rows[0].extracted.payload.contains_key("bio"));
    assert_eq!(rows[0].extracted.payload["born"], 1815);
    let copied = rows[0]
        .extracted
        .map
        .range_to_source(0..rows[0].extracted.text.len());
    assert_eq!(
        &bytes[copied],
        b"Wrote the first program, for the Analytical Engine."
    );

    // Several text columns are joined by blank lines, in file order; numbers name columns.
    let two = csv(
        &bytes,
        CsvOptions {
            text_columns: vec!["4".into(), "2".into()],
            ..CsvOptions::default()
        },
    );
    assert_eq!(
        two[0].extracted.text,
        "Ada Lovelace\n\nWrote the first program, for the Analytical Engine."
    );

    let groups = csv(
        &bytes,
        CsvOptions {
            rows_per_record: 3,
            ..CsvOptions::default()
        },
    );
    assert_eq!(groups.len(), 2);
    assert_eq!(
        (groups[0].key.as_str(), groups[1].key.as_str()),
        ("1-3", "4")
    );
    assert_eq!(
        groups[0].extracted.payload["born"],
        json!([1815, 1912, 1906])
    );
    assert_eq!(groups[0].extracted.payload["score"], json!([9.5, 10, null]));
    assert!(groups[0].extracted.text.contains("score: 10\n\nid: grace"));
    let whole = &bytes[groups[0].range.clone()];
    assert!(whole.starts_with(b"ada,") && whole.ends_with(b"\".\","));

    match records(
        Format::Csv,
        &bytes,
        &RecordOptions {
            csv: CsvOptions {
                id_column: Some("email".into()),
                ..CsvOptions::default()
            },
        },
    ) {
        Err(ExtractError::CsvUnknownColumn { name, columns }) => {
            assert_eq!(name, "email");
            assert_eq!(columns, ["id", "name", "born", "bio", "score"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn csv_errors_name_the_line() {
    // Ragged: the bad row is an error item, the others are read.
    let bytes = fixture("ragged.csv");
    let items: Vec<_> = records(Format::Csv, &bytes, &RecordOptions::default())
        .unwrap()
        .collect();
    assert_eq!(items.len(), 3);
    assert!(matches!(
        items[1],
        Err(ExtractError::CsvRagged {
            line: 3,
            expected: 3,
            found: 4
        })
    ));
    assert_eq!(items[2].as_ref().unwrap().key, "3");
    let message = extract_records(Format::Csv, &bytes, &RecordOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(message, "CSV line 3: 4 field(s), but the header has 3");
    // Line numbers hold with \r\n endings and values spanning lines.
    let crlf = b"a,b\r\n\"x\ny\",1\r\n2,3,4\r\n";
    let items: Vec<_> = records(Format::Csv, crlf, &RecordOptions::default())
        .unwrap()
        .collect();
    assert!(
        matches!(items[1], Err(ExtractError::CsvRagged { line: 4, .. })),
        "{items:?}"
    );
    assert!(matches!(
        extract_records(
            Format::Csv,
            &fixture("latin1.csv"),
            &RecordOptions::default()
        ),
        Err(ExtractError::CsvUtf8 { line: 3, field: 1 })
    ));
    let ids = |data: &[u8]| {
        extract_records(
            Format::Csv,
            data,
            &RecordOptions {
                csv: CsvOptions {
                    id_column: Some("id".into()),
                    ..CsvOptions::default()
                },
            },
        )
    };
    assert!(matches!(
        ids(b"id,v\na,1\nb,2\na,3\n"),
        Err(ExtractError::CsvDuplicateId { line: 4, ref id }) if id == "a"
    ));
    assert!(matches!(
        ids(b"id,v\na,1\n ,2\n"),
        Err(ExtractError::CsvEmptyId { line: 3 })
    ));
    // No header, an empty file, a header alone.
    let plain = csv(
        b"x;1\ny;2\n",
        CsvOptions {
            has_header: false,
            ..CsvOptions::default()
        },
    );
    assert_eq!(plain[1].extracted.text, "column1: y\ncolumn2: 2");
    assert!(csv(b"", CsvOptions::default()).is_empty());
    assert!(csv(b"a,b\n", CsvOptions::default()).is_empty());
    assert!(matches!(
        extract_bytes(Format::Csv, b"a,b\n1,2\n"),
        Err(ExtractError::ManyRecords {
            format: Format::Csv
        })
    ));
}

#[test]
fn email_body_headers_and_attachments() {
    let bytes = fixture("message.eml");
    let out = extract_bytes(Format::Email, &bytes).unwrap();
    assert_eq!(
        out.text,
        "Dear Charles,\n\nThe engine can compute Bernoulli numbers.\n\nAda"
    );
    assert_eq!(
        out.title.as_deref(),
        Some("Notes on the Analytical Engine — draft")
    );
    assert_eq!(
        Value::Object(out.payload.clone()),
        json!({
            "from": "Ada Lovelace <ada@example.com>",
            "to": ["Charles Babbage <charles@example.com>", "team@example.com"],
            "cc": ["Mary Somerville <mary@example.com>"],
            "subject": "Notes on the Analytical Engine — draft",
            "date": "2024-03-05T12:30:00Z",
            "message_id": "notes-1@example.com",
            "in_reply_to": "question-7@example.com",
            "attachments": ["table-of-numbers.pdf"],
        })
    );
    // The plain part is copied as it is: the text maps onto the file byte for byte.
    let src = out.map.range_to_source(0..out.text.len());
    assert_eq!(&bytes[src], out.text.as_bytes());
    let one = extract_records(Format::Email, &bytes, &RecordOptions::default()).unwrap();
    assert_eq!((one.len(), one[0].key.as_str()), (1, "notes-1@example.com"));
    assert_eq!(one[0].range, 0..bytes.len());

    // Without a plain part, the HTML one through the HTML extractor; quoted-printable, so the
    // text maps to the whole encoded part.
    let bytes = fixture("html-only.eml");
    let out = extract_bytes(Format::Email, &bytes).unwrap();
    assert_eq!(out.text, "# This week\n\nCafé prices rose — again.");
    let src = out.map.range_to_source(0..out.text.len());
    assert!(bytes[src].starts_with(b"<html><head><style>"));

    assert!(matches!(
        extract_bytes(Format::Email, b"no headers here\n"),
        Err(ExtractError::NotEmail { offset: 0 })
    ));
}

#[test]
fn mbox_messages_keys_and_offsets() {
    let bytes = fixture("archive.mbox");
    let msgs = extract_records(Format::Mbox, &bytes, &RecordOptions::default()).unwrap();
    let keys: Vec<&str> = msgs.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        keys,
        ["lunch-1@example.com", "lunch-2@example.com", "message-3"]
    );
    assert_eq!(msgs[0].extracted.text, "Noon at the usual place?");
    assert_eq!(msgs[0].extracted.payload["date"], "2024-05-01T16:00:00Z");
    assert_eq!(
        msgs[1].extracted.payload["in_reply_to"],
        "lunch-1@example.com"
    );
    assert_eq!(msgs[2].extracted.title.as_deref(), Some("Grüße"));
    assert_eq!(msgs[2].extracted.text, "Schöne Grüße aus Köln.");
    // The ">From" line the writer escaped reads as written, and maps past the ">".
    let text = &msgs[1].extracted.text;
    assert_eq!(text, "Yes.\nFrom the station I walk ten minutes.");
    let at = text.find("From").unwrap();
    let src = msgs[1].extracted.map.range_to_source(at..text.len());
    assert_eq!(&bytes[src], b"From the station I walk ten minutes.");
    for m in &msgs {
        // Each record is a message of its own: the slice reads as one.
        let slice = &bytes[m.range.clone()];
        assert!(slice.starts_with(b"From: "), "{}", m.key);
        let alone = extract_bytes(Format::Email, slice).unwrap();
        assert_eq!(alone.title, m.extracted.title);
        assert_maps_into(&bytes, m);
    }
    // The base64 body maps to its encoded lines.
    let src = msgs[2]
        .extracted
        .map
        .range_to_source(0..msgs[2].extracted.text.len());
    assert_eq!(&bytes[src], b"U2Now7ZuZSBHcsO8w59lIGF1cyBLw7Zsbi4K\n");

    // A message without headers is an error item naming its byte; the others are read.
    let mut broken = bytes.clone();
    let second = msgs[1].range.start;
    broken.splice(
        second..second,
        b"not a message\n\nFrom x Mon Jan  1 00:00:00 2024\n"
            .iter()
            .copied(),
    );
    let items: Vec<_> = records(Format::Mbox, &broken, &RecordOptions::default())
        .unwrap()
        .collect();
    assert_eq!(items.len(), 4);
    assert!(matches!(items[1], Err(ExtractError::NotEmail { offset }) if offset == second));
    assert_eq!(items[2].as_ref().unwrap().key, "lunch-2@example.com");
    assert!(matches!(
        extract_bytes(Format::Mbox, &bytes),
        Err(ExtractError::ManyRecords { .. })
    ));
    assert_eq!(extract(Format::Mbox, "From x\n").text, "");
    assert!(
        extract_records(Format::Mbox, b"", &RecordOptions::default())
            .unwrap()
            .is_empty()
    );
}

/// The bytes the csv writer gives one row, without its line break.
fn written(row: &[String]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(row).unwrap();
    let mut b = w.into_inner().unwrap();
    b.pop();
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the cells hold (delimiters, quotes, line breaks), each record's range slices
    /// the file to its row as written, its payload holds the trimmed cells, and its text maps
    /// back onto the file.
    #[test]
    fn csv_records_round_trip(
        width in 1usize..4,
        cells in proptest::collection::vec("[a-z ,\"\n\ré]{0,6}", 0..24),
    ) {
        let header: Vec<String> = (1..=width).map(|i| format!("c{i}")).collect();
        let rows: Vec<Vec<String>> = cells
            .chunks(width)
            .filter(|r| r.len() == width)
            .map(<[String]>::to_vec)
            .collect();
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&header).unwrap();
        for r in &rows {
            w.write_record(r).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let got = extract_records(Format::Csv, &bytes, &RecordOptions::default()).unwrap();
        prop_assert_eq!(got.len(), rows.len());
        for (i, (rec, row)) in got.iter().zip(&rows).enumerate() {
            prop_assert_eq!(&rec.key, &(i + 1).to_string());
            prop_assert_eq!(&bytes[rec.range.clone()], &written(row)[..]);
            for (name, cell) in header.iter().zip(row) {
                match cell.trim() {
                    "" => prop_assert!(!rec.extracted.payload.contains_key(name)),
                    v => prop_assert_eq!(&rec.extracted.payload[name], v),
                }
            }
            assert_maps_into(&bytes, rec);
        }
    }
}
