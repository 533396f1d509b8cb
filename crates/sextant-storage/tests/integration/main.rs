//! Storage contracts. Here: the WAL (round trips, torn tails cut at every byte, corruption
//! reported with its place); in `payload_index`: indexes agree with a full payload scan.

mod payload_index;

use std::path::Path;

use proptest::prelude::*;
use sextant_storage::wal::{Durability, Wal, MAGIC};
use sextant_storage::StorageError;

fn write(path: &Path, batches: &[(u64, &[u8])]) {
    let (mut wal, rec) = Wal::open(path, Durability::Always).unwrap();
    assert!(rec.records.is_empty());
    for (seq, payload) in batches {
        wal.append(*seq, payload).unwrap();
    }
}

fn reopen(path: &Path) -> Result<(Wal, sextant_storage::wal::Recovery), StorageError> {
    Wal::open(path, Durability::Always)
}

const BATCHES: [(u64, &[u8]); 3] = [(1, b"first batch"), (2, b""), (5, b"third, after a gap")];

#[test]
fn records_survive_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.wal");
    write(&path, &BATCHES);
    let (wal, rec) = reopen(&path).unwrap();
    assert_eq!(rec.torn_tail_bytes, 0);
    let got: Vec<(u64, &[u8])> = rec
        .records
        .iter()
        .map(|r| (r.seq, &r.payload[..]))
        .collect();
    assert_eq!(got, BATCHES.to_vec());
    assert_eq!(wal.last_seq(), Some(5));
}

#[test]
fn a_torn_last_record_is_cut_at_every_possible_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.wal");
    write(&path, &BATCHES);
    let full = std::fs::read(&path).unwrap();
    let last_len = 16 + BATCHES[2].1.len();
    let last_start = full.len() - last_len;
    for cut in last_start + 1..full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        let (mut wal, rec) = reopen(&path).unwrap();
        assert_eq!(rec.records.len(), 2, "cut at {cut}");
        assert_eq!(rec.torn_tail_bytes as usize, cut - last_start);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            last_start,
            "file cut back"
        );
        // The log stays appendable after recovery.
        wal.append(7, b"after recovery").unwrap();
        drop(wal);
        let (_, rec) = reopen(&path).unwrap();
        assert_eq!(
            rec.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 2, 7]
        );
    }
}

#[test]
fn a_damaged_last_record_and_a_zero_tail_are_torn_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.wal");
    write(&path, &BATCHES);
    let full = std::fs::read(&path).unwrap();
    let mut flipped = full.clone();
    *flipped.last_mut().unwrap() ^= 0x40;
    std::fs::write(&path, &flipped).unwrap();
    assert_eq!(reopen(&path).unwrap().1.records.len(), 2);

    let mut zeros = full.clone();
    zeros.extend_from_slice(&[0; 4096]);
    std::fs::write(&path, &zeros).unwrap();
    let (_, rec) = reopen(&path).unwrap();
    assert_eq!((rec.records.len(), rec.torn_tail_bytes), (3, 4096));
}

#[test]
fn damage_before_the_end_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.wal");
    write(&path, &BATCHES);
    let mut bytes = std::fs::read(&path).unwrap();
    let first_payload = 16 + 16;
    bytes[first_payload + 2] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = reopen(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, StorageError::Corrupt { offset: 16, .. }),
        "{msg}"
    );
    assert!(msg.contains("log.wal") && msg.contains("byte 16"), "{msg}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "a corrupt log is never rewritten"
    );
}

#[test]
fn an_impossible_record_length_is_an_error_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.wal");
    write(&path, &BATCHES);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16 + 3] = 0x7f; // the first record's length becomes ~2 GiB
    std::fs::write(&path, &bytes).unwrap();
    let err = reopen(&path).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
}

#[test]
fn foreign_files_and_future_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.wal");
    std::fs::write(&path, b"definitely not a write-ahead log").unwrap();
    assert!(reopen(&path).unwrap_err().to_string().contains("bad magic"));

    let mut future = MAGIC.to_vec();
    future.extend_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&future);
    future.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &future).unwrap();
    let err = reopen(&path).unwrap_err();
    assert!(matches!(
        err,
        StorageError::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        }
    ));
}

#[test]
fn sequence_numbers_must_increase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.wal");
    write(&path, &BATCHES);
    let (mut wal, _) = reopen(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    for seq in [5, 3] {
        let err = wal.append(seq, b"late").unwrap_err();
        assert!(
            err.to_string().contains("not above the last one, 5"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the log is unchanged"
    );
}

#[test]
fn truncation_keeps_later_records_and_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.wal");
    write(&path, &BATCHES);
    let (mut wal, _) = reopen(&path).unwrap();
    assert_eq!(wal.truncate_through(2).unwrap(), 1);
    wal.append(6, b"six").unwrap();
    assert_eq!(wal.truncate_through(6).unwrap(), 0);
    assert!(wal.append(6, b"again").is_err(), "numbers never go back");
    wal.append(8, b"eight").unwrap();
    drop(wal);
    let (wal, rec) = reopen(&path).unwrap();
    assert_eq!(
        rec.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![8]
    );
    assert_eq!(wal.last_seq(), Some(8));
    assert!(!dir.path().join("log.wal.tmp").exists());
}

#[test]
fn durability_parses() {
    assert_eq!("always".parse(), Ok(Durability::Always));
    assert_eq!(
        "250ms".parse(),
        Ok(Durability::Interval(std::time::Duration::from_millis(250)))
    );
    assert_eq!(
        "2s".parse(),
        Ok(Durability::Interval(std::time::Duration::from_secs(2)))
    );
    for bad in ["sometimes", "10", "ms", "5 minutes"] {
        assert!(bad.parse::<Durability>().is_err(), "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_batches_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.wal");
        {
            let (mut wal, _) = Wal::open(&path, Durability::Interval(std::time::Duration::from_secs(60))).unwrap();
            for (i, p) in payloads.iter().enumerate() {
                wal.append(i as u64 * 3 + 1, p).unwrap();
            }
            wal.sync().unwrap();
        }
        let (_, rec) = reopen(&path).unwrap();
        prop_assert_eq!(rec.torn_tail_bytes, 0);
        let got: Vec<Vec<u8>> = rec.records.into_iter().map(|r| r.payload).collect();
        prop_assert_eq!(got, payloads);
    }
}
