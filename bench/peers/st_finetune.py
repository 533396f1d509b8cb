#!/usr/bin/env python3
"""Peer benchmark for `sextant finetune` (issue 20): sentence-transformers' trainer fine-tuning a
model (all-MiniLM-L6-v2) on the very triples sextant trained on, with sextant's hyper-parameters,
on the CPU; measures training throughput and memory.

    .venv-train/bin/python bench/peers/st_finetune.py --pairs OUT/training_pairs.jsonl \
        --model models/all-MiniLM-L6-v2 --threads 1 --json OUT/st-finetune-t1.json

Needs bash bench/peers/setup-train.sh (the venv .venv-train).

--pairs: JSON lines {"anchor": str, "positive": str, "negative": str or null}, in training order
(`sextant finetune` writes them as OUT/training_pairs.jsonl). Negatives are all present or all
null: present, they are MultipleNegativesRankingLoss's hard-negative column; null, the column is
dropped (in-batch negatives only). A mix is refused (sextant never makes one).

What is trained, and how it matches sextant (crates/sextant-embed/src/train/):
- SentenceTransformerTrainer with MultipleNegativesRankingLoss (scale 20, cosine), fp32, on CPU.
- Batches are plain sequential chunks of --batch rows in file order: a SequentialSampler batch
  sampler (not the trainer's default random one, not NO_DUPLICATES); as sextant does, a last
  batch of fewer than 2 pairs is skipped (it has no in-batch negative). The rows that reach the
  collator are recorded and checked against the file's order ("order_check" in the JSON).
  With --epochs > 1 every epoch repeats the file's order (sextant reshuffles each epoch).
- AdamW (the trainer's default optimiser, --optim to change), lr --lr, linear warm-up over
  ceil(--warmup x steps) steps then linear decay to 0, weight decay 0.01, gradient norm clipped
  to 1.0, seed 42, max_seq_length --max-seq. No evaluation, no checkpoints, the model is not
  saved (the trainer's output_dir is a temporary directory removed after).
  Both exempt biases and LayerNorm weights from weight decay. Known differences from sextant,
  all small: the trainer's first step has lr 0 (its schedule counts from step 0; sextant's
  from 1); the trainer trains with BERT's dropout (0.1), sextant without; the trainer
  tokenises each batch inside the loop (sextant tokenises everything before its timer
  starts).

Measured over the training loop only (from the trainer's on_train_begin to on_train_end: after
the model load, dataloader and optimiser set-up): wall seconds, process CPU seconds (all
threads), pairs/s = pairs x epochs / wall seconds (sextant's definition); the RSS before
training; peak RSS (ru_maxrss, the whole process's life, model load included) and the training
loop's own peak (VmHWM, reset through /proc/self/clear_refs at the start of training; null where
the kernel refuses), and the RSS right after the imports, before the model loads (PyPI's torch
is the CUDA build: its libraries make much of that); per-step loss, lr, gradient norm and RSS;
versions; threads.

The thread count is fixed before torch loads: OMP_NUM_THREADS, MKL_NUM_THREADS,
OPENBLAS_NUM_THREADS and RAYON_NUM_THREADS (the tokenizer's pool) = --threads, then
torch.set_num_threads(--threads) and torch.set_num_interop_threads(1).
"""

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time

# Thread-count variables must be in the environment before torch (or numpy) is first imported:
# OpenMP and MKL read them when they load.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", required=True, help="training triples, JSON lines, in training order")
    p.add_argument("--model", required=True, help="sentence-transformers model directory")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-seq", type=int, default=128)
    p.add_argument("--warmup", type=float, default=0.1, help="share of the steps in linear warm-up")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--scale", type=float, default=20.0, help="MultipleNegativesRankingLoss scale")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--optim", default=None,
                   help="transformers optimiser name (default: the trainer's, adamw_torch_fused)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N pairs only")
    p.add_argument("--json", required=True, help="where to write the results")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be at least 1")
    if a.batch < 2:
        p.error("--batch must be at least 2 (in-batch negatives)")
    if not 0.0 <= a.warmup < 1.0:
        p.error("--warmup is a share of the steps, in [0, 1)")
    return a


def read_pairs(path, limit):
    anchors, positives, negatives = [], [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            if limit is not None and len(anchors) >= limit:
                break
            r = json.loads(line)
            if not isinstance(r.get("anchor"), str) or not isinstance(r.get("positive"), str):
                sys.exit(f"{path}:{n}: anchor and positive must be strings")
            neg = r.get("negative")
            if neg is not None and not isinstance(neg, str):
                sys.exit(f"{path}:{n}: negative must be a string or null")
            anchors.append(r["anchor"])
            positives.append(r["positive"])
            negatives.append(neg)
    with_neg = sum(x is not None for x in negatives)
    if with_neg not in (0, len(negatives)):
        sys.exit(f"{path}: {with_neg} of {len(negatives)} pairs have a negative: "
                 "all or none must (MultipleNegativesRankingLoss takes a full column)")
    cols = {"anchor": anchors, "positive": positives}
    if with_neg:
        cols["negative"] = negatives
    return cols


def status_mib(field):
    """A /proc/self/status memory field (VmRSS, VmHWM) in MiB, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0); True when it did."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def main(argv):
    a = parse_args(argv)
    for var in THREAD_VARS:
        os.environ[var] = str(a.threads)
    # Everything is local: never reach for a hub.
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    if "torch" in sys.modules or "numpy" in sys.modules:
        sys.exit("torch or numpy was imported before the thread count was set")

    import torch

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)

    import accelerate
    import datasets
    import sentence_transformers
    import tokenizers
    import transformers
    from datasets import Dataset
    from sentence_transformers import (
        DefaultBatchSampler,
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from torch.utils.data import SequentialSampler
    from transformers import PrinterCallback, TrainerCallback

    rss_after_import = status_mib("VmRSS")  # the libraries alone (torch's CUDA build included)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()

    cols = read_pairs(a.pairs, a.limit)
    n_pairs = len(cols["anchor"])
    if n_pairs < 2:
        sys.exit(f"{a.pairs}: {n_pairs} pairs: at least 2 are needed")
    batch = a.batch
    # Sextant's steps an epoch: full batches, plus a last partial batch of at least 2 pairs.
    steps_per_epoch = n_pairs // batch + int(n_pairs % batch >= 2)
    pairs_trained = min(n_pairs, steps_per_epoch * batch)  # a last single pair is skipped

    class SequentialBatches(DefaultBatchSampler):
        """Plain sequential batches in dataset order; a last batch under 2 rows is skipped."""

        def __init__(self, dataset, batch_size, drop_last, valid_label_columns=None,
                     generator=None, seed=0):
            super().__init__(SequentialSampler(range(len(dataset))), batch_size=batch_size,
                             drop_last=drop_last, valid_label_columns=valid_label_columns,
                             generator=generator, seed=seed)
            self.n = len(dataset)

        def __iter__(self):
            for b in super().__iter__():
                if len(b) >= 2:
                    yield b

        def __len__(self):
            return self.n // self.batch_size + int(self.n % self.batch_size >= 2)

    t_load = time.perf_counter()
    model = SentenceTransformer(a.model, device="cpu")
    model.max_seq_length = a.max_seq
    load_seconds = time.perf_counter() - t_load
    dataset = Dataset.from_dict(cols)
    loss = MultipleNegativesRankingLoss(model, scale=a.scale)

    out_dir = tempfile.mkdtemp(prefix="st-finetune-")
    extra = {"optim": a.optim} if a.optim else {}
    args = SentenceTransformerTrainingArguments(
        output_dir=out_dir,
        num_train_epochs=a.epochs,
        per_device_train_batch_size=batch,
        learning_rate=a.lr,
        lr_scheduler_type="linear",
        warmup_steps=a.warmup,  # a float in [0, 1) is a share of the steps, rounded up
        weight_decay=a.weight_decay,
        max_grad_norm=a.max_grad_norm,
        seed=a.seed,
        data_seed=a.seed,
        fp16=False,
        bf16=False,
        use_cpu=True,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_drop_last=False,
        batch_sampler=SequentialBatches,
        **extra,
    )

    mark = {}
    steps = []
    rnd = lambda x, d=1: None if x is None else round(x, d)  # noqa: E731

    class Measure(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            mark["rss_before"] = status_mib("VmRSS")
            mark["maxrss_before"] = maxrss_mib()
            mark["hwm_reset"] = reset_peak_rss()
            mark["cpu0"] = time.process_time()
            mark["t0"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):
            mark["t1"] = time.perf_counter()
            mark["cpu1"] = time.process_time()
            mark["hwm"] = status_mib("VmHWM") if mark["hwm_reset"] else None

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                hwm = status_mib("VmHWM") if mark["hwm_reset"] else None
                steps.append({"step": state.global_step, "loss": logs["loss"],
                              "lr": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
                              "rss_mib": rnd(status_mib("VmRSS")), "peak_rss_mib": rnd(hwm)})

    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                         callbacks=[Measure()])
    trainer.remove_callback(PrinterCallback)  # the per-step log lines; the JSON has them

    # Record the rows that reach the collator, to check the batches' order.
    seen = []
    collator = trainer.data_collator

    class Recording(type(collator)):
        def __call__(self, features):
            seen.append([f["anchor"] for f in features])
            return super().__call__(features)

    collator.__class__ = Recording

    try:
        t_call = time.perf_counter()
        out = trainer.train()
        train_call_seconds = time.perf_counter() - t_call
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)

    bert_config = getattr(getattr(model[0], "auto_model", None), "config", None)
    expected = []
    for _ in range(a.epochs):
        anchors = cols["anchor"][:pairs_trained]
        expected += [anchors[i:i + batch] for i in range(0, pairs_trained, batch)]
    order_check = "sequential" if seen == expected else "NOT sequential"

    wall = mark["t1"] - mark["t0"]
    cpu = mark["cpu1"] - mark["cpu0"]
    peak = maxrss_mib()
    losses = [s["loss"] for s in steps]
    last_epoch = [s["loss"] for s in steps[-steps_per_epoch:]]
    result = {
        "tool": "sentence-transformers SentenceTransformerTrainer",
        "pairs_file": a.pairs,
        "model": a.model,
        "threads": a.threads,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "pairs": n_pairs,
        "pairs_trained_per_epoch": pairs_trained,
        "hard_negatives": "negative" in cols,
        "epochs": a.epochs,
        "steps": len(seen),
        "expected_steps": steps_per_epoch * a.epochs,
        "batch_order": "SequentialSampler batches of %d in file order" % batch,
        "order_check": order_check,
        "hyper_parameters": {
            "batch": batch, "lr": a.lr, "warmup": a.warmup,
            "warmup_steps": args.get_warmup_steps(steps_per_epoch * a.epochs),
            "scheduler": "linear", "weight_decay": a.weight_decay,
            "max_grad_norm": a.max_grad_norm, "scale": a.scale, "similarity": "cosine",
            "max_seq_length": model.max_seq_length, "seed": a.seed, "dtype": "float32",
            "optim": str(getattr(args.optim, "value", args.optim)),
            "attn_implementation": getattr(bert_config, "_attn_implementation", None),
            # the trainer trains in train mode: BERT's dropout is on
            "hidden_dropout": getattr(bert_config, "hidden_dropout_prob", None),
            "attention_dropout": getattr(bert_config, "attention_probs_dropout_prob", None),
        },
        "load_seconds": round(load_seconds, 3),
        "train_seconds": round(wall, 3),
        "train_call_seconds": round(train_call_seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "cpu_per_wall": round(cpu / wall, 3) if wall > 0 else None,
        "pairs_per_second": round(n_pairs * a.epochs / wall, 3) if wall > 0 else None,
        "rss_after_import_mib": rnd(rss_after_import),
        "rss_before_train_mib": rnd(mark["rss_before"]),
        "peak_rss_before_train_mib": rnd(mark["maxrss_before"]),
        "peak_rss_mib": rnd(peak),
        "peak_rss_train_mib": rnd(mark["hwm"]),
        "train_rss_growth_mib": rnd(mark["hwm"] - mark["rss_before"])
        if mark["hwm"] is not None and mark["rss_before"] is not None else None,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "last_epoch_loss": sum(last_epoch) / len(last_epoch) if last_epoch else None,
        "mean_loss": out.training_loss,
        "step_log": steps,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "accelerate": accelerate.__version__,
            "datasets": datasets.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "cpu": cpu_model(),
        "torch_parallel_info": torch.__config__.parallel_info().strip().splitlines()[:6],
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"st-finetune threads={a.threads} pairs={n_pairs} steps={len(seen)} "
          f"train={wall:.2f}s cpu={cpu:.2f}s pairs/s={result['pairs_per_second']} "
          f"rss_before={result['rss_before_train_mib']}MiB "
          f"peak_train={result['peak_rss_train_mib']}MiB peak={result['peak_rss_mib']}MiB "
          f"loss {result['first_loss']}->{result['last_loss']} order={order_check}")
    if order_check != "sequential":
        sys.exit("the batches did not follow the file's order")


if __name__ == "__main__":
    main(sys.argv[1:])
