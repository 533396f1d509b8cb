//! Filtered graph walks on one index, without the engine: recall@10 and QPS of the walk alone
//! (no exact scan; the code scan with `--plan codes`) at each selectivity of a `bench/filtered_data.py` data set,
//! against the unfiltered walk of the same index, one thread.
//!
//! ```text
//! cargo run --release -p sextant-index --example filtered_walk -- \
//!     data/filtered/glove-sweep cosine [--quantization auto|none|sq8|pq4] [--ef 16,32,64] \
//!     [--only none,10%] [--plan walk|codes] [--mapped [huge]]
//! ```
//!
//! The index is built once (`HnswIndex::build`, default parameters, on the current rayon pool)
//! and cached beside the data as `index-<quantization>.hnsw`: delete that file after changing
//! how indexes are built. Each setting runs three times; the median QPS is printed. `--only`
//! keeps some settings (`none`, `10%`, …). `--plan codes` scans the allowed points' 1-bit codes
//! instead of walking (the planner's other plan; unfiltered searches still walk). `--mapped` loads
//! the cached index through a memory mapping and uses it in place, as a reopened collection does
//! (`--mapped huge` advises the mapping for huge pages first); without it the index is decoded
//! into memory.

use std::time::Instant;

use roaring::RoaringBitmap;
use sextant_core::Metric;
use sextant_index::{
    DenseVectors, HnswIndex, HnswParams, IdFilter, Quantization, SearchParams, VectorIndex,
};

fn read_vecs(path: &str) -> (usize, Vec<u32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dim = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let row = 4 + 4 * dim;
    let mut out = Vec::with_capacity(bytes.len() / row * dim);
    for r in bytes.chunks_exact(row) {
        out.extend(
            r[4..]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap())),
        );
    }
    (dim, out)
}

/// A little-endian f32 `.npy` matrix: its dimension and values.
fn read_npy(path: &str) -> (usize, Vec<u32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).expect("npy header");
    assert!(header.contains("'<f4'"), "{path}: not little-endian f32");
    let shape = header.split("'shape': (").nth(1).expect("npy shape");
    let dim: usize = shape
        .split(',')
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')')
        .parse()
        .unwrap();
    let data = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (dim, data)
}

fn floats(v: Vec<u32>) -> Vec<f32> {
    v.into_iter().map(f32::from_bits).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = &args[0];
    let metric: Metric = args[1].parse().expect("metric");
    let mut quantization = Quantization::Auto;
    let mut efs = vec![10, 16, 24, 32, 48, 64, 96, 128];
    let mut only: Option<Vec<String>> = None;
    let mut codes = false;
    let mut mapped: Option<bool> = None;
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quantization" => quantization = it.next().unwrap().parse().expect("quantization"),
            "--ef" => {
                efs = it
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|v| v.parse().unwrap())
                    .collect()
            }
            "--plan" => {
                codes = match it.next().map(String::as_str) {
                    Some("walk") => false,
                    Some("codes") => true,
                    other => panic!("--plan walk|codes, not {other:?}"),
                }
            }
            "--mapped" => mapped = Some(false),
            "huge" if mapped.is_some() => mapped = Some(true),
            "--only" => only = Some(it.next().unwrap().split(',').map(String::from).collect()),
            other => panic!("unknown argument {other}"),
        }
    }
    let meta = std::fs::read_to_string(format!("{dir}/meta.json")).expect("meta.json");
    let base = meta
        .split("\"base\": \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("base in meta.json");
    let cache = format!("{dir}/index-{}.hnsw", quantization.name());
    let index = match std::fs::read(&cache) {
        Ok(bytes) => match mapped {
            None => HnswIndex::from_bytes(&bytes).expect("cached index"),
            Some(huge) => {
                let file = std::fs::File::open(&cache).expect("cached index");
                // SAFETY: the cache file is not changed while this process runs.
                let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
                if huge {
                    map.advise(memmap2::Advice::HugePage).expect("madvise");
                }
                let index = HnswIndex::from_shared(std::sync::Arc::new(map), None).expect("map");
                eprintln!("{} bytes used in place", index.mapped_bytes());
                index
            }
        },
        Err(_) => {
            let (dim, raw) = if base.ends_with(".npy") {
                read_npy(base)
            } else {
                read_vecs(base)
            };
            let vectors = DenseVectors::from_rows(metric, dim, &floats(raw)).expect("vectors");
            let params = HnswParams {
                quantization,
                ..HnswParams::default()
            };
            let t = Instant::now();
            let index = HnswIndex::build(vectors, params, None).expect("build");
            eprintln!("built in {:.1} s", t.elapsed().as_secs_f64());
            std::fs::write(&cache, index.to_bytes()).expect("cache");
            index
        }
    };
    let (dim, raw) = read_vecs(&format!("{dir}/queries.fvecs"));
    let queries = floats(raw);
    let nq = queries.len() / dim;
    let buckets: Vec<u32> = std::fs::read_to_string(format!("{dir}/payloads.jsonl"))
        .expect("payloads")
        .lines()
        .map(|l| {
            l.split("\"bucket\":")
                .nth(1)
                .unwrap()
                .trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let mut sels: Vec<u32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("gt-sel")?
                .strip_suffix(".ivecs")?
                .parse()
                .ok()
        })
        .collect();
    sels.sort();
    let mut settings: Vec<(String, Option<RoaringBitmap>, String)> =
        vec![("none".into(), None, format!("{dir}/gt-all.ivecs"))];
    for s in sels {
        let allowed: RoaringBitmap = (0..buckets.len() as u32)
            .filter(|&i| buckets[i as usize] < s)
            .collect();
        settings.push((
            format!("{s}%"),
            Some(allowed),
            format!("{dir}/gt-sel{s}.ivecs"),
        ));
    }
    println!("| selectivity | ef | recall@10 | QPS |\n|---|---|---|---|");
    if let Some(only) = &only {
        settings.retain(|(name, _, _)| only.contains(name));
    }
    for (name, allowed, gt) in &settings {
        let (gk, gt) = read_vecs(gt);
        let filter = allowed.as_ref().map(IdFilter::Bitmap);
        for &ef in &efs {
            let mut params = SearchParams::new(10).with_ef(ef);
            params.exact_filter_threshold = 0;
            params.binary_filter_share = if codes { 1.0 } else { 0.0 };
            let mut qps = Vec::new();
            let mut recall = 0.0;
            for _ in 0..3 {
                let t = Instant::now();
                let mut hits = 0usize;
                for q in 0..nq {
                    let found = index
                        .search(&queries[q * dim..(q + 1) * dim], &params, filter.as_ref())
                        .expect("search");
                    let truth = &gt[q * gk..q * gk + 10];
                    hits += found.iter().filter(|n| truth.contains(&n.id)).count();
                }
                qps.push(nq as f64 / t.elapsed().as_secs_f64());
                recall = hits as f64 / (nq * 10) as f64;
            }
            qps.sort_by(f64::total_cmp);
            println!("| {name} | {ef} | {recall:.4} | {:.0} |", qps[1]);
        }
    }
}
