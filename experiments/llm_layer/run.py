"""Loss landscapes of a LLaMA-style causal language model: all weights, and one MLP projection.

A LLaMA-style model is built locally from a configuration with the ``transformers`` library (an
optional extra: ``pip install 'topo_landscape[llm]'``); nothing is downloaded. It is trained for
a few minutes on a generated corpus (sentences of a small grammar, one character per token),
then two 2D landscapes are sampled around it on held-out batches of unequal length, the loss a
mean per predicted token over all of them (``tl.sample(batch_weights=tokens per batch)``):

- every weight (but the normalisation scales, 1-D, which Li et al. 2018 leave fixed), along
  random directions normalised per layer;
- one MLP projection of the first block, ``model.layers.0.mlp.up_proj.weight``, as in the
  LLaMA-3.2 "first MLP linear layer" landscapes, the other weights fixed.

Each gets its surface, its topological profile and (with plotly) an interactive surface.

    python experiments/llm_layer/run.py --quick                  # CPU, a few minutes
    python experiments/llm_layer/run.py --full --device cuda     # a larger model and grid
    python experiments/llm_layer/run.py --random-weights         # untrained: for timing only

Every stage is stored under --out (the trained weights, each landscape file), and a second call
does only what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

import topo_landscape as tl

QUICK = dict(
    hidden=64, layers=2, heads=4, steps=300, sequences=512, batch=32, resolution=11, lr=3e-3
)
FULL = dict(
    hidden=512, layers=8, heads=8, steps=3000, sequences=20000, batch=64, resolution=41, lr=1e-3
)
LAYER = "model.layers.0.mlp.up_proj.weight"

ALPHABET = "\n abcdefghijklmnopqrstuvwxyz0123456789.,"
PAD = 0  # token 0 is padding; characters are 1..len(ALPHABET)

WORDS = {
    "det": ["the", "a", "every", "no", "one"],
    "adj": ["red", "small", "quick", "old", "bright", "quiet", "heavy", "round"],
    "noun": ["fox", "river", "stone", "bird", "window", "garden", "engine", "letter"],
    "verb": ["sees", "moves", "finds", "holds", "follows", "builds", "opens", "keeps"],
    "adv": ["slowly", "again", "today", "twice", "early"],
}


def sentence(rng: np.random.Generator) -> str:
    """One sentence of the grammar: det [adj] noun verb [count] [adj] noun [adv]."""
    pick = lambda kind: WORDS[kind][rng.integers(len(WORDS[kind]))]  # noqa: E731
    words = [pick("det")]
    if rng.random() < 0.6:
        words.append(pick("adj"))
    words += [pick("noun"), pick("verb")]
    if rng.random() < 0.4:
        words.append(str(int(rng.integers(2, 10))))
    if rng.random() < 0.5:
        words.append(pick("adj"))
    words.append(pick("noun") + ("s" if words[-1].isdigit() else ""))
    if rng.random() < 0.3:
        words.append(pick("adv"))
    return " ".join(words) + "."


def corpus(n: int, seed: int) -> list[list[int]]:
    """``n`` token sequences of one to four sentences each (so of unequal length)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        text = " ".join(sentence(rng) for _ in range(int(rng.integers(1, 5))))
        out.append([ALPHABET.index(c) + 1 for c in text])
    return out


def batches(sequences: list[list[int]], size: int) -> list[dict]:
    """Batches of ``size`` sequences, padded to the batch's longest; labels -100 on padding."""
    out = []
    for k in range(0, len(sequences), size):
        group = sequences[k : k + size]
        length = max(len(s) for s in group)
        ids = torch.full((len(group), length), PAD, dtype=torch.long)
        for i, s in enumerate(group):
            ids[i, : len(s)] = torch.tensor(s)
        mask = (ids != PAD).long()
        out.append(
            {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}
        )
    return out


def tokens(batch: dict) -> int:
    """Predicted tokens of a batch: every label but the first of each sequence and padding."""
    return int((batch["labels"][:, 1:] != -100).sum())


def causal_lm_loss(model, batch):
    """The mean cross-entropy per predicted token of the batch (transformers' own)."""
    return model(**batch).loss


def build(cfg: dict, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(ALPHABET) + 1,
        hidden_size=cfg["hidden"],
        intermediate_size=cfg["hidden"] * 2,
        num_hidden_layers=cfg["layers"],
        num_attention_heads=cfg["heads"],
        num_key_value_heads=cfg["heads"],
        max_position_embeddings=512,
        tie_word_embeddings=False,
        pad_token_id=PAD,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def train(model, data: list[dict], cfg: dict, device) -> list[float]:
    """AdamW over the batches in turn, ``cfg["steps"]`` steps; the loss per step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    model.train()
    losses = []
    for step in range(cfg["steps"]):
        batch = {k: v.to(device) for k, v in data[step % len(data)].items()}
        loss = causal_lm_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a small model on the CPU (default)")
    mode.add_argument("--full", action="store_true", help="a larger model and grid (a GPU)")
    for name in QUICK:
        parser.add_argument(f"--{name}", type=type(QUICK[name]))
    parser.add_argument("--eval-batches", type=int, default=4, help="held-out batches")
    parser.add_argument("--span", type=float, default=1.0, help="half-width of each axis")
    parser.add_argument("--random-weights", action="store_true", help="skip training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=os.path.join("experiments", "llm_layer", "results"))
    args = parser.parse_args(argv)
    try:
        import transformers  # noqa: F401
    except ImportError:
        parser.error("needs transformers: pip install 'topo_landscape[llm]'")
    cfg = dict(FULL if args.full else QUICK)
    for name in QUICK:
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    if args.random_weights:
        cfg["steps"] = 0
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    device = torch.device(args.device)

    sequences = corpus(cfg["sequences"] + args.eval_batches * cfg["batch"], seed=args.seed)
    held_out = batches(sequences[cfg["sequences"] :], cfg["batch"])[: args.eval_batches]
    model = build(cfg, args.seed).to(device)
    weights = os.path.join(args.out, f"model_{_key(cfg, args.seed)}.pt")
    record = {"config": cfg, "parameters": sum(p.numel() for p in model.parameters())}
    if os.path.exists(weights):
        model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    else:
        t0 = time.perf_counter()
        losses = train(model, batches(sequences[: cfg["sequences"]], cfg["batch"]), cfg, device)
        record["train_seconds"] = time.perf_counter() - t0
        record["train_loss_last"] = float(np.mean(losses[-20:])) if losses else None
        torch.save(model.state_dict(), weights)
    model.eval()
    counts = [tokens(b) for b in held_out]
    print(
        f"model: {record['parameters']:,} parameters; held out: {len(held_out)} batches of "
        f"{', '.join(map(str, counts))} tokens",
        flush=True,
    )

    surfaces = {
        "all_weights": dict(normalization="layer", parameters=None),
        "mlp_up_proj": dict(normalization="layer", parameters=[LAYER]),
    }
    results = {}
    for name, how in surfaces.items():
        dirs = tl.random_directions(model, n=2, seed=args.seed, **how)
        land = tl.sample(
            model,
            causal_lm_loss,
            held_out,
            dirs,
            resolution=cfg["resolution"],
            span=args.span,
            batch_weights=counts,
            device=device,
            out=os.path.join(args.out, f"{name}_{_key(cfg, args.seed)}_r{cfg['resolution']}.h5"),
            progress=False,
        )
        tree = tl.merge_tree(land)
        what = "every weight" if how["parameters"] is None else LAYER
        tl.plot.surface(land, title=f"{what}").savefig(
            os.path.join(args.out, f"{name}_surface.png"), dpi=110
        )
        tl.plot.profile(tree, title=f"{what}: profile").savefig(
            os.path.join(args.out, f"{name}_profile.png"), dpi=110
        )
        try:
            tl.plot.surface_html(land, os.path.join(args.out, f"{name}_surface.html"))
        except ImportError:
            print("  (no plotly: the interactive surface is left out)")
        sampling = land.metadata["sampling"]
        results[name] = {
            "parameters_moved": int(sum(dirs[0][k].numel() for k in dirs.parameter_names)),
            "seconds": sampling.get("seconds"),
            "mode": sampling.get("mode"),
            **{k: v for k, v in tl.features(land, tree).items() if not k.startswith("basin_")},
        }
        print(
            f"{name}: {results[name]['parameters_moved']:,} weights moved, "
            f"{land.values.size} points in {sampling.get('seconds', 0):.1f} s "
            f"({sampling.get('mode')}); loss at the centre {results[name]['loss_at_center']:.4f}, "
            f"{results[name]['n_minima']} minima",
            flush=True,
        )
    record["landscapes"] = results
    record["held_out_tokens"] = counts
    record["device"], record["torch"] = str(device), torch.__version__
    record["seconds_this_call"] = time.perf_counter() - started
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(record, f, indent=1, default=float)
    print(f"done in {record['seconds_this_call']:.0f} s; wrote {args.out}/summary.json")


def _key(cfg: dict, seed: int) -> str:
    """A name for what the trained weights depend on: the settings but the grid's, and seed."""
    import hashlib

    training = {k: v for k, v in cfg.items() if k != "resolution"}
    digest = hashlib.sha256(json.dumps(training, sort_keys=True).encode()).hexdigest()[:10]
    return f"{digest}_seed{seed}"


if __name__ == "__main__":
    main()
