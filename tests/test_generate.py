"""Sampling (nucleus correctness, KV-cache / RNN generation == full recompute) and
diacritic restoration (greedy over allowed marktones) on tiny random models."""

from __future__ import annotations

import pytest
import torch

from symato.errors import SymatoError
from symato.models import build_model
from symato.run.generate import Feeder, generate_ids, nucleus_probs, sample_token
from symato.run.restore import restore_ids

V = 29


def tiny(arch: str, ctx_len: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(
        arch,
        vocab_size=V,
        n_layer=2,
        n_embd=16,
        n_head=2,
        ctx_len=ctx_len,
        **({"wkv_backend": "torch"} if arch in ("rwkv4", "rwkv7") else {}),
    )
    # larger GPT/Llama noise saturates to one token; RWKV-7 is ill-conditioned above ~0.2
    scale = {"rwkv4": 0.5, "rwkv7": 0.2}.get(arch, 0.1)
    with torch.no_grad():  # random weights so the logits are far from uniform
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model.eval()


# ----------------------------------------------------------------------------- nucleus


def test_nucleus_probs_on_a_known_distribution():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64).log()
    # 0.5 + 0.3 first reaches 0.7 -> keep two, renormalize
    assert nucleus_probs(logits, 1.0, 0.7).tolist() == pytest.approx([0.625, 0.375, 0, 0])
    # exactly reaching top_p stops there
    assert nucleus_probs(logits, 1.0, 0.5).tolist() == pytest.approx([1, 0, 0, 0])
    assert nucleus_probs(logits, 1.0, 0.81).tolist() == pytest.approx(
        [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]
    )
    assert nucleus_probs(logits, 1.0, 1.0).tolist() == pytest.approx([0.5, 0.3, 0.15, 0.05])
    # order in the vocabulary does not matter
    perm = torch.tensor([2, 0, 3, 1])
    assert nucleus_probs(logits[perm], 1.0, 0.7).tolist() == pytest.approx([0, 0.625, 0, 0.375])
    # temperature 2 = square root of the probabilities, renormalized
    sq = torch.tensor([0.5, 0.3, 0.15, 0.05]).sqrt()
    assert nucleus_probs(logits, 2.0, 1.0).tolist() == pytest.approx((sq / sq.sum()).tolist())
    assert nucleus_probs(logits, 0.0, 0.3).tolist() == [1, 0, 0, 0]  # greedy
    with pytest.raises(SymatoError, match="top_p"):
        nucleus_probs(logits, 1.0, 0.0)
    with pytest.raises(SymatoError, match="temperature"):
        nucleus_probs(logits, -1.0, 0.9)


def test_sample_token_frequencies_match_the_nucleus():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    g = torch.Generator().manual_seed(0)
    n = 20000
    counts = torch.bincount(
        torch.tensor([sample_token(logits, 1.0, 0.7, g) for _ in range(n)]), minlength=4
    )
    assert counts[2:].sum() == 0
    sd = (n * 0.625 * 0.375) ** 0.5
    assert abs(counts[0].item() - n * 0.625) < 5 * sd


# ----------------------------------------------------------------------------- generation


def greedy_by_recompute(model, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize("arch", ["rwkv4", "gpt", "rwkv7", "llama"])
def test_greedy_generation_equals_full_recompute(arch):
    model = tiny(arch)
    prompt = [3, 1, 4, 1, 5]
    got = generate_ids(model, prompt, max_new_tokens=12, temperature=0.0)
    assert got == greedy_by_recompute(model, prompt, 12)
    assert len(set(got)) > 1  # a non-degenerate sequence, so the check has teeth


def test_sampling_is_reproducible_and_stops_at_stop_id():
    model = tiny("rwkv4")
    a = generate_ids(model, [1, 2], max_new_tokens=30, temperature=1.0, top_p=0.95, seed=5)
    b = generate_ids(model, [1, 2], max_new_tokens=30, temperature=1.0, top_p=0.95, seed=5)
    assert a == b and len(a) == 30 and all(0 <= t < V for t in a)
    stop = a[3]
    c = generate_ids(model, [1, 2], 30, 1.0, 0.95, seed=5, stop_id=stop)
    assert c == a[: a.index(stop)]


def test_gpt_generation_past_ctx_len_reprimes():
    model = tiny("gpt", ctx_len=8)
    out = generate_ids(model, [1, 2, 3], max_new_tokens=20, temperature=0.0)
    assert len(out) == 20
    # the first tokens (inside the window) still equal full recompute
    assert out[:5] == greedy_by_recompute(model, [1, 2, 3], 5)
    feeder = Feeder(model)
    feeder.feed(list(range(20)))  # a prompt longer than the window keeps its last 8 tokens
    assert feeder.cached == 8 and feeder.history == list(range(12, 20))


# ----------------------------------------------------------------------------- restoration


def restore_by_recompute(model, ids, slots, bos):
    """The same greedy choice, computed by re-running the whole prefix for every slot."""
    out = list(ids)
    with torch.no_grad():
        for pos, allowed in slots:
            logits = model(torch.tensor([[bos, *out[:pos]]]))[0, -1]
            allowed = sorted(allowed)
            out[pos] = allowed[int(logits[allowed].argmax())]
    return out


@pytest.mark.parametrize("arch", ["rwkv4", "gpt", "rwkv7", "llama"])
def test_restore_ids_greedy_over_allowed(arch):
    model = tiny(arch)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, V, (30,), generator=g).tolist()
    positions = [1, 2, 5, 9, 10, 17, 29]
    slots = [(p, [20 + (p % 3), 23, 25 + (p % 4)]) for p in positions]
    for p in positions:
        ids[p] = 0  # placeholder, must be ignored
    got = restore_ids(model, ids, slots, bos_id=28)
    assert len(got) == len(ids)
    assert all(got[i] == ids[i] for i in range(len(ids)) if i not in positions)
    assert all(got[p] in allowed for p, allowed in slots)
    assert got == restore_by_recompute(model, ids, slots, bos=28)
    assert len({got[p] for p in positions}) > 1  # the model really discriminates


def restore_wholes_by_recompute(model, ids, slots, wholes, bos):
    """Whole-id scoring, computed by full forward passes over the exact sequences."""
    out, fed = [], 0
    with torch.no_grad():
        for (pos, allowed), whole in zip(slots, wholes, strict=True):
            before = [bos, *out, *ids[fed : pos - 1]]
            lp = torch.log_softmax(model(torch.tensor([before]))[0, -1], -1)
            lp_sym = torch.log_softmax(model(torch.tensor([[*before, ids[pos - 1]]]))[0, -1], -1)
            scores = {c: float(lp[whole[c]]) if c in whole else float(lp[ids[pos - 1]] + lp_sym[c])
                      for c in sorted(allowed)}
            best = max(scores, key=scores.get)
            tail = [whole[best]] if best in whole else [ids[pos - 1], best]
            out += [*ids[fed : pos - 1], *tail]
            fed = pos + 1
    return out + ids[fed:]


@pytest.mark.parametrize("arch", ["rwkv4", "gpt", "rwkv7", "llama"])
def test_restore_ids_scores_whole_syllable_ids(arch):
    """With whole-syllable ids (symato+N), a winning whole id replaces "sym marktone"
    and the model's state is rewound: same result as recomputing every prefix."""
    model = tiny(arch)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 20, (40,), generator=g).tolist()
    positions = [2, 4, 9, 12, 20, 27, 39]
    slots = [(p, [20, 21, 22 + (p % 3)]) for p in positions]
    wholes = [{20: 25 + (p % 3)} if p % 2 else {21: 26, 22 + (p % 3): 27} for p in positions]
    got = restore_ids(model, ids, slots, bos_id=28, wholes=wholes)
    assert got == restore_wholes_by_recompute(model, ids, slots, wholes, bos=28)
    used = sum(1 for t in got if 25 <= t <= 27)
    assert used > 0
    if arch == "rwkv4":  # this model picks both kinds: whole ids and sym + marktone
        assert used < len(positions)
    assert len(got) == len(ids) - used
    no_wholes = restore_ids(model, ids, slots, bos_id=28, wholes=[{} for _ in positions])
    assert no_wholes == restore_ids(model, ids, slots, bos_id=28)


def test_restore_ids_rejects_bad_slots():
    model = tiny("rwkv4")
    with pytest.raises(SymatoError, match="not after"):
        restore_ids(model, [1, 2, 3, 4], [(2, [5]), (2, [6])])
    with pytest.raises(SymatoError, match="outside"):
        restore_ids(model, [1, 2, 3], [(3, [5])])
    with pytest.raises(SymatoError, match="no allowed"):
        restore_ids(model, [1, 2, 3], [(1, [])])
    with pytest.raises(SymatoError, match="bos_id"):
        restore_ids(model, [1, 2, 3], [(0, [4, 5])])
    with pytest.raises(SymatoError, match="vocabulary"):
        restore_ids(model, [1, 2, 3], [(1, [4, V])])
    assert restore_ids(model, [1, 2, 3], []) == [1, 2, 3]


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def symato_ckpt(tmp_path_factory):
    """A tiny random RWKV over the default symato vocabulary, saved with its tokenizer."""
    from symato import Tokenizer
    from symato.run.checkpoint import save_model

    tok = Tokenizer.default()
    torch.manual_seed(0)
    model = build_model(
        "rwkv4", vocab_size=tok.vocab_size, n_layer=1, n_embd=16, ctx_len=32, wkv_backend="torch"
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("run") / "model.pt"
    save_model(path, model, {"tokenizer": tok.to_dict(), "run": "tiny"})
    return path


def strip_marks(text: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def test_generate_cli(symato_ckpt, capsys):
    from symato.cli import main as cli_main

    argv = ["generate", "--ckpt", str(symato_ckpt), "--prompt", "Xin chào", "--seed", "3"]
    argv += ["--max-new-tokens", "8", "--top-p", "0.8"]
    assert cli_main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("Xin chào") and len(first) > len("Xin chào\n")
    assert cli_main(argv) == 0
    assert capsys.readouterr().out == first  # same seed, same text


def test_cli_errors_name_the_problem(tmp_path, symato_ckpt, capsys):
    from symato.cli import main as cli_main
    from symato.run.checkpoint import load_model, save_model

    model, _ = load_model(symato_ckpt)
    save_model(tmp_path / "novocab.pt", model, {})
    assert cli_main(["generate", "--ckpt", str(tmp_path / "novocab.pt")]) == 1
    assert "no 'tokenizer' in meta" in capsys.readouterr().err
    assert cli_main(["restore", "--ckpt", str(tmp_path / "missing.pt"), "a"]) == 1
    assert "missing.pt" in capsys.readouterr().err


def test_restore_cli_keeps_the_letters(symato_ckpt, capsys):
    pytest.importorskip("symato.text.restoration")
    from symato.cli import main as cli_main

    text = "Xin chao cac ban, hom nay troi dep qua!"
    assert cli_main(["restore", "--ckpt", str(symato_ckpt), text]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert strip_marks(out) == text
    assert out != text  # a random model still picks marks somewhere


def test_generate_streams_the_same_text(symato_ckpt):
    """The pieces passed to on_text (the CLI prints them as they come) join to the
    returned text: the prompt first, then the continuation token by token."""
    from symato.run.generate import generate, load_for_inference

    model, tok = load_for_inference(str(symato_ckpt), None, "cpu")
    pieces: list[str] = []
    text = generate(model, tok, "Xin chào", max_new_tokens=12, seed=5, on_text=pieces.append)
    assert "".join(pieces) == text == generate(model, tok, "Xin chào", max_new_tokens=12, seed=5)
    assert pieces[0] == "Xin chào"[: len(pieces[0])] and len(pieces) == 12 + 2


@pytest.mark.parametrize("arch", ["rwkv7", "llama"])
def test_generate_and_restore_cli_with_the_new_archs(tmp_path, capsys, arch):
    """`symato generate` and `symato restore` load and run RWKV-7 and Llama checkpoints."""
    from symato import Tokenizer
    from symato.cli import main as cli_main
    from symato.run.checkpoint import save_model

    tok = Tokenizer.default()
    torch.manual_seed(0)
    model = build_model(arch, vocab_size=tok.vocab_size, n_layer=1, n_embd=16, n_head=2,
                        ctx_len=8, **({"wkv_backend": "torch"} if arch == "rwkv7" else {}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    save_model(tmp_path / "model.pt", model, {"tokenizer": tok.to_dict(), "run": arch})
    argv = ["generate", "--ckpt", str(tmp_path), "--prompt", "Xin chào", "--seed", "3",
            "--max-new-tokens", "12"]  # prompt + 12 tokens > ctx_len 8: no window limit
    assert cli_main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("Xin chào") and len(first) > len("Xin chào\n")
    assert cli_main(argv) == 0 and capsys.readouterr().out == first
    text = "Xin chao cac ban, hom nay troi dep qua!"
    assert cli_main(["restore", "--ckpt", str(tmp_path), text]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert strip_marks(out) == text and out != text
