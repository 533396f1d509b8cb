//! Duplicate detection: an exact key over normalised text, and MinHash signatures with
//! locality-sensitive hashing (LSH) for near-duplicates.
//!
//! * **Normalisation**: NFKC-free and cheap on purpose — lower-cased alphanumeric words joined
//!   by single spaces, so whitespace, punctuation and case do not make two copies differ.
//! * **Exact key**: FNV-1a 64 of the normalised text.
//! * **Shingles**: the set of overlapping [`SHINGLE`]-word sequences of the normalised text (the
//!   whole text when it has fewer words), each hashed to 64 bits.
//! * **MinHash**: [`HASHES`] values, the minimum over the shingles of
//!   `mix(shingle ^ seed_i)`; the share of equal positions between two signatures estimates
//!   the Jaccard similarity of their shingle sets (standard error ≈ 0.044 at J = 0.5).
//! * **LSH**: the signature is cut into [`BANDS`] bands of [`ROWS`] values; two texts are
//!   candidates when any band is equal (the probability is `1 − (1 − J^ROWS)^BANDS`: 0.87 at
//!   J = 0.5, 0.99 at J = 0.6, 0.03 at J = 0.2), and a candidate is a near-duplicate when its
//!   estimated similarity reaches the threshold.

/// Words per shingle.
pub const SHINGLE: usize = 3;
/// MinHash values per signature.
pub const HASHES: usize = 128;
/// LSH bands.
pub const BANDS: usize = 32;
/// Signature values per band.
pub const ROWS: usize = HASHES / BANDS;
/// Default Jaccard similarity (of word 3-shingles) from which two texts are near-duplicates.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// splitmix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Lower-cased alphanumeric words.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The text as duplicates are compared: lower-cased alphanumeric words, one space apart.
pub fn normalise(text: &str) -> String {
    words(text).join(" ")
}

/// The exact-duplicate key of a text (hex of a 64-bit hash of [`normalise`]d text); `None`
/// for a text without words.
pub fn exact_key(text: &str) -> Option<String> {
    let n = normalise(text);
    (!n.is_empty()).then(|| format!("{:016x}", fnv(n.bytes())))
}

/// The MinHash signature of a text; `None` for a text without words.
pub fn signature(text: &str) -> Option<Vec<u32>> {
    let w = words(text);
    if w.is_empty() {
        return None;
    }
    let hashes: Vec<u64> = if w.len() < SHINGLE {
        vec![fnv(w.join(" ").bytes())]
    } else {
        w.windows(SHINGLE)
            .map(|s| fnv(s.join(" ").bytes()))
            .collect()
    };
    Some(
        (0..HASHES as u64)
            .map(|i| {
                let seed = mix(i.wrapping_add(0x5EED));
                hashes
                    .iter()
                    .map(|&h| (mix(h ^ seed) >> 32) as u32)
                    .min()
                    .expect("at least one shingle")
            })
            .collect(),
    )
}

/// The LSH band keys of a signature: `"<band>:<hash of its values>"`, one per band.
pub fn band_keys(sig: &[u32]) -> Vec<String> {
    sig.chunks(ROWS)
        .enumerate()
        .map(|(b, rows)| {
            let h = fnv(rows.iter().flat_map(|v| v.to_le_bytes()));
            format!("{b}:{h:016x}")
        })
        .collect()
}

/// Estimated Jaccard similarity of the texts two signatures were taken of.
pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// A signature as compact text (hex), for storing in a payload.
pub fn encode(sig: &[u32]) -> String {
    sig.iter().map(|v| format!("{v:08x}")).collect()
}

/// The inverse of [`encode`]; `None` for text that is not one.
pub fn decode(s: &str) -> Option<Vec<u32>> {
    if !s.len().is_multiple_of(8) || !s.is_ascii() {
        return None;
    }
    (0..s.len() / 8)
        .map(|i| u32::from_str_radix(&s[i * 8..i * 8 + 8], 16).ok())
        .collect()
}

/// Exact Jaccard similarity of the word shingle sets of two texts (for tests and reports).
pub fn jaccard(a: &str, b: &str) -> f64 {
    let set = |t: &str| -> std::collections::HashSet<String> {
        let w = words(t);
        if w.len() < SHINGLE {
            std::iter::once(w.join(" "))
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            w.windows(SHINGLE).map(|s| s.join(" ")).collect()
        }
    };
    let (x, y) = (set(a), set(b));
    if x.is_empty() && y.is_empty() {
        return 1.0;
    }
    x.intersection(&y).count() as f64 / x.union(&y).count() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_that_differ_in_case_space_and_punctuation_share_the_exact_key() {
        let a = exact_key("The quick brown fox.  Jumps!").unwrap();
        assert_eq!(exact_key("the QUICK brown fox jumps").unwrap(), a);
        assert_ne!(exact_key("the quick brown fox leaps").unwrap(), a);
        assert!(exact_key(" ... ").is_none());
    }

    #[test]
    fn the_signature_estimates_jaccard_similarity() {
        let base: Vec<String> = (0..300)
            .map(|i| format!("w{}", (i * 7919) % 1000))
            .collect();
        for keep in [300, 270, 240, 150, 60] {
            let mut other = base.clone();
            for (j, w) in other.iter_mut().enumerate().skip(keep) {
                *w = format!("x{j}");
            }
            let (ta, tb) = (base.join(" "), other.join(" "));
            let exact = jaccard(&ta, &tb);
            let est = similarity(&signature(&ta).unwrap(), &signature(&tb).unwrap());
            assert!(
                (exact - est).abs() < 0.15,
                "keep {keep}: exact {exact}, estimate {est}"
            );
        }
        let s = signature("a b").unwrap();
        assert_eq!(similarity(&s, &signature("A, b!").unwrap()), 1.0);
        assert!(signature("").is_none());
    }

    #[test]
    fn signatures_round_trip_as_text_and_bands_cover_the_signature() {
        let s = signature("one two three four five six").unwrap();
        assert_eq!(s.len(), HASHES);
        assert_eq!(decode(&encode(&s)).unwrap(), s);
        assert!(decode("xyz").is_none());
        assert!(decode("0000000g").is_none());
        let bands = band_keys(&s);
        assert_eq!(bands.len(), BANDS);
        assert!(bands[3].starts_with("3:"));
        assert_eq!(band_keys(&s), bands, "deterministic");
    }
}
