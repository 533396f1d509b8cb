//! Times training steps of `TrainableEncoder::fit` on synthetic token sequences (development
//! profiling of issue 20's training throughput).
//!
//!   [MIXED=1] cargo run --release -p sextant-embed --example train_step -- MODEL_DIR [STEPS] [BATCH] [ANCHOR_LEN] [DOC_LEN]
//!
//! `MIXED=1` trains in mixed precision (the linear layers' products on the bf16 kernel).
use std::time::Instant;

use sextant_embed::{Encoded, Pooling, TrainOptions, TrainableEncoder};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("model directory"));
    let arg = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().expect("a number"));
    let (steps, batch, alen, dlen) = (arg(2, 4), arg(3, 16), arg(4, 20), arg(5, 128));
    sextant_embed::keep_inference_buffers();
    let mut enc = TrainableEncoder::load(&dir, candle_core::DType::F32, Pooling::Mean).unwrap();
    enc.set_mixed_precision(std::env::var("MIXED").is_ok_and(|v| v == "1"))
        .unwrap();
    let mut seed = 7u64;
    let mut seq = |n: usize| {
        let ids: Vec<u32> = (0..n)
            .map(|i| match i {
                0 => 101,
                _ if i + 1 == n => 102,
                _ => {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    1000 + ((seed >> 33) % 20000) as u32
                }
            })
            .collect();
        Encoded {
            type_ids: vec![0; ids.len()],
            ids,
            truncated: false,
        }
    };
    let n = steps * batch;
    let pairs: Vec<(Encoded, Encoded)> = (0..n).map(|_| (seq(alen), seq(dlen))).collect();
    let negs: Vec<Encoded> = (0..n).map(|_| seq(dlen)).collect();
    let t = Instant::now();
    let mut last = t;
    enc.fit(&pairs, Some(&negs), 0, &TrainOptions::default(), |s| {
        let now = Instant::now();
        eprintln!(
            "step {} loss {:.4} {:.2}s",
            s.step,
            s.loss,
            (now - last).as_secs_f64()
        );
        last = now;
    })
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!("{n} pairs in {secs:.2}s: {:.2} pairs/s", n as f64 / secs);
}
