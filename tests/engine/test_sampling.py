"""Samplers, logits processors, stop strings and logprobs on real MLX arrays."""

from __future__ import annotations

import itertools
import math
import random

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm import load
from mlx_lm.generate import BatchGenerator
from tiny_model import build_tiny_llama

from mlx_workbench.engine.errors import InvalidRequest
from mlx_workbench.engine.requests import SamplingParams
from mlx_workbench.engine.sampling import LogitBias, StopStrings, make_logits_processors, make_sampler, token_logprob


def log_softmax(values) -> mx.array:
    logits = mx.array(values, dtype=mx.float32)
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def draw(sampler, row: mx.array, times: int) -> list[int]:
    """`times` draws from one distribution, as one batched sampler call."""
    return sampler(mx.broadcast_to(row, (times, row.shape[-1]))).tolist()


def frequencies(tokens: list[int], vocab: int) -> np.ndarray:
    return np.bincount(tokens, minlength=vocab) / len(tokens)


# probabilities 0.5, 0.3, 0.15, 0.05
FOUR = log_softmax(np.log([0.5, 0.3, 0.15, 0.05]))


# ---- samplers ----------------------------------------------------------------


def test_temperature_zero_is_greedy_for_every_row():
    sampler = make_sampler(SamplingParams(temperature=0, top_p=0.5, seed=3))
    rows = log_softmax([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0], [0.0, 0.0, 5.0]])
    assert sampler(rows).tolist() == [1, 0, 2]
    assert sampler is make_sampler(SamplingParams(temperature=0))  # one greedy sampler for all


def test_unseeded_requests_with_equal_params_share_one_sampler():
    """mlx_lm's BatchGenerator then samples the whole batch in one call."""
    params = dict(temperature=0.7, top_p=0.9, top_k=40, min_p=0.05)
    assert make_sampler(SamplingParams(**params)) is make_sampler(SamplingParams(**params, max_tokens=3), choice=2)
    assert make_sampler(SamplingParams(**params)) is not make_sampler(SamplingParams(**dict(params, top_k=41)))
    assert make_sampler(SamplingParams(**params, seed=1)) is not make_sampler(SamplingParams(**params, seed=1))


def test_temperature_one_samples_the_distribution():
    tokens = draw(make_sampler(SamplingParams(temperature=1.0, seed=0)), FOUR, 20000)
    np.testing.assert_allclose(frequencies(tokens, 4), [0.5, 0.3, 0.15, 0.05], atol=0.015)


def test_temperature_sharpens_and_flattens():
    for temperature in (0.5, 2.0):
        tokens = draw(make_sampler(SamplingParams(temperature=temperature, seed=0)), FOUR, 20000)
        expected = np.array([0.5, 0.3, 0.15, 0.05]) ** (1 / temperature)
        np.testing.assert_allclose(frequencies(tokens, 4), expected / expected.sum(), atol=0.015)


@pytest.mark.parametrize(
    "params, allowed",
    [
        (dict(top_k=1), {0}),
        (dict(top_k=2), {0, 1}),
        (dict(top_k=4), {0, 1, 2, 3}),  # the whole vocabulary: no truncation
        (dict(top_k=100), {0, 1, 2, 3}),  # beyond it too
        (dict(top_p=0.7), {0, 1}),  # 0.5 < 0.7 <= 0.5 + 0.3
        (dict(top_p=0.81), {0, 1, 2}),
        (dict(min_p=0.2), {0, 1, 2}),  # keeps p >= 0.2 * 0.5
        (dict(min_p=0.7), {0}),
        (dict(top_p=0.6), {0, 1}),
        # Temperature applies first: at 0.5 the top token holds 0.68 of the mass.
        (dict(top_p=0.6, temperature=0.5), {0}),
        (dict(top_k=3, top_p=0.7), {0, 1}),
    ],
)
def test_truncation_keeps_exactly_the_allowed_tokens(params, allowed):
    tokens = draw(make_sampler(SamplingParams(**{"temperature": 1.0, "seed": 0, **params})), FOUR, 4000)
    assert set(tokens) == allowed


def test_truncated_tokens_keep_their_relative_odds():
    tokens = draw(make_sampler(SamplingParams(temperature=1.0, top_k=2, seed=0)), FOUR, 20000)
    np.testing.assert_allclose(frequencies(tokens, 4), [0.625, 0.375, 0, 0], atol=0.015)


def seeded_run(seed: int, rows: list[mx.array], choice: int = 0, between=lambda: None) -> list[int]:
    sampler = make_sampler(SamplingParams(temperature=1.0, top_p=0.95, seed=seed), choice)
    tokens = []
    for row in rows:
        tokens.append(sampler(row[None]).item())
        between()
    return tokens


def test_seeded_sampling_is_reproducible_and_unaffected_by_other_draws():
    rows = [log_softmax(np.random.default_rng(i).normal(size=500)) for i in range(30)]
    alone = seeded_run(42, rows)
    assert seeded_run(42, rows) == alone

    other_seeded = make_sampler(SamplingParams(temperature=1.0, seed=7))
    unseeded = make_sampler(SamplingParams(temperature=1.0))

    def noise():
        mx.random.seed(random.randrange(1 << 30))  # the global RNG moves on and is reseeded
        mx.eval(unseeded(mx.stack(rows[:4])), other_seeded(rows[0][None]), mx.random.uniform(shape=(8,)))

    assert seeded_run(42, rows, between=noise) == alone
    assert seeded_run(43, rows) != alone


def test_seeded_row_is_the_same_alone_and_inside_a_batch():
    """BatchGenerator calls each row's own sampler on its row when samplers differ."""
    rng = np.random.default_rng(0)
    rows = [log_softmax(rng.normal(size=300)) for _ in range(20)]
    alone = seeded_run(5, rows)
    seeded = make_sampler(SamplingParams(temperature=1.0, top_p=0.95, seed=5))
    others = [make_sampler(SamplingParams(temperature=0.8)), make_sampler(SamplingParams(temperature=1.0, seed=9))]
    batched = []
    for row in rows:
        batch = mx.stack([log_softmax(rng.normal(size=300)), row, log_softmax(rng.normal(size=300))])
        samplers = [others[0], seeded, others[1]]
        sampled = mx.concatenate([s(batch[e : e + 1]) for e, s in enumerate(samplers)])
        batched.append(sampled.tolist()[1])
    assert batched == alone


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    model, _ = load(str(build_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")))
    return model


def batch_generate(
    model, requests: list[tuple[list[int], SamplingParams]], join_after: int = 0, processors=()
) -> list[list[int]]:
    """Runs requests through mlx_lm's BatchGenerator with our samplers (logit_bias
    included); the last one joins after `join_after` steps of the others, as
    continuous batching admits it."""
    generator = BatchGenerator(model, stop_tokens=[])
    tokens: dict[int, list[int]] = {}

    def insert(batch):
        prompts, params = zip(*batch)
        uids = generator.insert(
            list(prompts),
            max_tokens=[16] * len(batch),
            samplers=[
                make_sampler(p, bias=LogitBias(p.logit_bias, model.args.vocab_size) if p.logit_bias else None)
                for p in params
            ],
            logits_processors=[list(processors)] * len(batch),
        )
        tokens.update({uid: [] for uid in uids})
        return uids

    uids = insert(requests[:-1]) if join_after else []
    for _ in range(join_after):
        for r in generator.next()[1]:
            tokens[r.uid].append(r.token)
    uids += insert(requests[-1:] if join_after else requests)
    while any(len(t) < 16 for t in tokens.values()):
        for r in generator.next()[1]:
            tokens[r.uid].append(r.token)
    generator.close()
    return [tokens[uid] for uid in uids]


@pytest.mark.parametrize("join_after", [0, 5])
def test_seeded_request_generates_the_same_tokens_alone_and_in_a_batch(tiny_model, join_after):
    seeded = ([5, 6, 7, 8], SamplingParams(temperature=1.0, top_p=0.95, seed=1234))
    others = [
        ([9, 10, 11, 12, 13, 14, 15], SamplingParams(temperature=0.9)),
        ([20, 21], SamplingParams(temperature=1.0, seed=1)),
    ]
    alone = batch_generate(tiny_model, [seeded])[0]
    assert batch_generate(tiny_model, [*others, seeded], join_after)[-1] == alone
    assert batch_generate(tiny_model, [seeded])[0] == alone


def test_choices_of_a_seeded_request_differ_and_choice_zero_keeps_the_seed():
    rows = [log_softmax(np.zeros(1000)) for _ in range(10)]
    first, second = seeded_run(11, rows, choice=0), seeded_run(11, rows, choice=1)
    assert first != second
    assert seeded_run(11, rows, choice=1) == second
    assert first == seeded_run(11, rows)


def test_seeds_beyond_64_bits_and_negative_seeds_are_accepted():
    for seed in (-1, 2**70, 0):
        assert len(seeded_run(seed, [FOUR] * 3)) == 3


# ---- logits processors -------------------------------------------------------


def apply(processors, tokens: list[int], logits) -> np.ndarray:
    out = mx.array([logits], dtype=mx.float32)
    for processor in processors:
        out = processor(mx.array(tokens), out)
    return np.array(out[0])


LOGITS = [2.0, -1.0, 0.5, 3.0, -2.0, 1.0]


def test_no_processors_by_default():
    assert make_logits_processors(SamplingParams(), prompt_tokens=3) == []


def test_presence_and_frequency_count_completion_tokens_only():
    prompt, completion = [0, 1, 2], [3, 3, 5]
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=0.25)
    out = apply(make_logits_processors(params, prompt_tokens=3), prompt + completion, LOGITS)
    expected = np.array(LOGITS)
    expected[3] -= 0.5 + 2 * 0.25
    expected[5] -= 0.5 + 1 * 0.25
    np.testing.assert_allclose(out, expected)
    # Before the first completion token nothing is penalized.
    np.testing.assert_allclose(apply(make_logits_processors(params, 3), prompt, LOGITS), LOGITS)


def test_negative_penalties_encourage_repetition():
    out = apply(make_logits_processors(SamplingParams(presence_penalty=-1.0), 1), [0, 4], LOGITS)
    np.testing.assert_allclose(out, np.array(LOGITS) + np.eye(6)[4])


def test_repetition_penalty_scales_seen_logits_towards_less_likely():
    """mlx_lm's meaning: positive logits divided, negative multiplied, prompt included."""
    out = apply(make_logits_processors(SamplingParams(repetition_penalty=2.0), 2), [0, 1, 3], LOGITS)
    np.testing.assert_allclose(out, [1.0, -2.0, 0.5, 1.5, -2.0, 1.0])


# ---- logit_bias -----------------------------------------------------------------


def test_logit_bias_minus_100_bans_and_plus_100_forces():
    params = SamplingParams(temperature=1.0, logit_bias={3: -100, 4: 100}, seed=0)
    bias = LogitBias(params.logit_bias, vocab_size=6)
    out = np.array(bias(mx.array([LOGITS]))[0])
    assert out[3] == -math.inf and out[4] == LOGITS[4] + 100
    logprobs = log_softmax(LOGITS)
    assert draw(make_sampler(params, bias=bias), logprobs, 1000) == [4] * 1000
    assert make_sampler(SamplingParams(temperature=0), bias=bias)(logprobs[None]).item() == 4


def test_logit_bias_ban_holds_at_high_temperature():
    params = SamplingParams(temperature=100.0, logit_bias={3: -100, 0: -100}, seed=0)
    sampler = make_sampler(params, bias=LogitBias(params.logit_bias, vocab_size=6))
    assert set(draw(sampler, log_softmax(LOGITS), 4000)) == {1, 2, 4, 5}


def test_logit_bias_adds_in_between_values():
    out = LogitBias({1: 2.5, 2: -0.5}, vocab_size=6)(mx.array([LOGITS]))
    np.testing.assert_allclose(np.array(out[0]), np.array(LOGITS) + [0, 2.5, -0.5, 0, 0, 0])


@pytest.mark.parametrize("filters", [{}, {"top_p": 0.7}, {"top_k": 3}, {"min_p": 0.2}])
def test_a_bias_on_logprobs_samples_what_a_bias_on_logits_does(filters):
    """The sampler biases normalised rows; the draws are those of biasing the logits
    and normalising after, as OpenAI defines logit_bias."""
    params = SamplingParams(temperature=0.8, logit_bias={0: 1.5, 3: -2.0, 5: -100}, seed=4, **filters)
    bias = LogitBias(params.logit_bias, vocab_size=6)
    on_logprobs = draw(make_sampler(params, bias=bias), log_softmax(LOGITS), 3000)
    on_logits = draw(make_sampler(params), log_softmax(bias(mx.array(LOGITS))), 3000)
    assert on_logprobs == on_logits and 5 not in on_logprobs


def test_reported_logprobs_are_those_of_the_biased_logits():
    bias = LogitBias({1: 2.5, 4: -100}, vocab_size=6)
    out = bias.renormalized(log_softmax(LOGITS))
    np.testing.assert_allclose(np.array(out), np.array(log_softmax(bias(mx.array(LOGITS)))), rtol=1e-6)
    assert np.array(out)[4] == -math.inf


def test_equal_biases_share_one_sampler():
    params = SamplingParams(temperature=0.7, logit_bias={2: -100, 1: 3.0})
    same = SamplingParams(temperature=0.7, logit_bias={1: 3.0, 2: -100})
    sampler = make_sampler(params, bias=LogitBias(params.logit_bias, 6))
    assert sampler is make_sampler(same, choice=1, bias=LogitBias(same.logit_bias, 6))
    assert sampler is not make_sampler(params, bias=LogitBias({2: -100}, 6))
    greedy = SamplingParams(temperature=0, logit_bias={2: -100})
    assert make_sampler(greedy, bias=LogitBias({2: -100}, 6)) is make_sampler(greedy, bias=LogitBias({2: -100}, 6))


@pytest.mark.parametrize("token", [6, -1, 10**9])
def test_logit_bias_outside_the_vocabulary_is_refused(token):
    with pytest.raises(InvalidRequest, match=r"outside this model's vocabulary \(0\.\.5\)") as err:
        LogitBias({1: 1.0, token: 5.0}, vocab_size=6)
    assert err.value.param == "logit_bias"


def test_processors_run_inside_mlx_lm_batch_generation(tiny_model):
    """BatchGenerator hands processors the prompt then the completion so far, which
    is what `prompt_tokens` relies on; a ban (in the sampler) holds through real generation."""
    prompt = [1, 2, 3, 4]
    greedy = SamplingParams(temperature=0)
    banned = batch_generate(tiny_model, [(prompt, greedy)])[0][0]
    params = SamplingParams(temperature=0, logit_bias={banned: -100}, frequency_penalty=2.0, presence_penalty=2.0)
    contexts = []
    spy = lambda tokens, logits: contexts.append(tokens.tolist()) or logits  # noqa: E731
    processors = [spy, *make_logits_processors(params, prompt_tokens=len(prompt))]
    tokens = batch_generate(tiny_model, [(prompt, params)], processors=processors)[0]
    # (BatchGenerator computes one step ahead, so it may have asked once more.)
    assert contexts[: len(tokens)] == [prompt + tokens[:k] for k in range(len(tokens))]
    assert banned not in tokens


# ---- stop strings ------------------------------------------------------------


def reference_cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """Brute force: the stop string that ends first wins (the longest on a tie)."""
    for end in range(len(text) + 1):
        for start in range(end):
            if text[start:end] in stops:
                return text[:start], True
    return text, False


def run_chunks(chunks: list[str], stops: list[str]) -> tuple[str, bool]:
    """Feeds the chunks, checking after each that nothing emitted could still be
    (the start of) a stop string, whatever text comes next."""
    matcher, emitted, seen = StopStrings(stops), "", ""
    for chunk in chunks:
        seen += chunk
        text, stopped = matcher.feed(chunk)
        emitted += text
        if stopped:
            return emitted, True
        for stop in stops:  # complete every partial stop string at the end of `seen`
            for k in range(1, len(stop)):
                if seen.endswith(stop[:k]):
                    assert reference_cut(seen + stop[k:], stops)[0].startswith(emitted), (chunks, stops)
    return emitted + matcher.flush(), False


def splits(text: str, pieces: int):
    for cuts in itertools.combinations(range(1, len(text)), pieces - 1):
        bounds = (0, *cuts, len(text))
        yield [text[a:b] for a, b in zip(bounds, bounds[1:])]


STOP_CASES = [
    ("Hello world.\n\nNext question", ["\n\n"]),
    ("The answer is 42. END of it", ["END", "ENDING"]),
    ("xabcx", ["abc", "b"]),  # "b" ends first
    ("xab", ["ab", "b"]),  # both end together: the longer, earlier one
    ("aaab", ["aab"]),
    ("ababac!", ["abac"]),
    ("STOP right there", ["STOP"]),
    ("no stop here at all", ["zz", "q!"]),
    ("ends with a partial sto", ["stop"]),
    ("héllo → wörld ✓ done", ["→ w", "✓"]),
    ("<|im_end|> leaked", ["<|im_end|>"]),
    ("tail stop", ["stop", ""]),  # an empty stop string is ignored
]


@pytest.mark.parametrize("text, stops", STOP_CASES)
def test_stop_strings_are_found_across_every_chunking(text, stops):
    expected = reference_cut(text, [s for s in stops if s])
    chunkings = [[text], list(text), *splits(text, 2), *splits(text, 3)]
    for chunks in chunkings:
        assert run_chunks(chunks, stops) == expected, chunks


def test_stop_strings_random_texts():
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(rng.choices("abc", k=rng.randint(0, 14)))
        stops = ["".join(rng.choices("abc", k=rng.randint(1, 4))) for _ in range(rng.randint(1, 3))]
        expected = reference_cut(text, stops)
        for chunks in [list(text), *splits(text, 2), *itertools.islice(splits(text, 3), 40)]:
            assert run_chunks(chunks, stops) == expected, (chunks, stops)


@pytest.mark.parametrize("text, stops", STOP_CASES)
def test_the_stop_string_that_ended_the_text_is_named(text, stops):
    """Anthropic's stop_sequence: the one the cut was made at."""
    cut, stopped = reference_cut(text, [s for s in stops if s])
    for chunks in ([text], list(text)):
        matcher = StopStrings(stops)
        for chunk in chunks:
            matcher.feed(chunk)
        if stopped:
            assert text[len(cut) :].startswith(matcher.matched) and matcher.matched in stops
            assert not any(text[len(cut) :].startswith(s) and len(s) > len(matcher.matched) for s in stops)
        else:
            assert matcher.matched is None


def test_only_a_possible_stop_start_is_held_back():
    matcher = StopStrings(["aab"])
    assert matcher.feed("xaaa") == ("xa", False)  # "aa" may still become "aab"
    assert matcher.feed("c") == ("aac", False)
    assert matcher.feed("aa") == ("", False)
    assert matcher.flush() == "aa"


def test_nothing_comes_after_a_stop():
    matcher = StopStrings(["##"])
    assert matcher.feed("one #") == ("one ", False)
    assert matcher.feed("# two") == ("", True)
    assert matcher.feed("three") == ("", True)
    assert matcher.flush() == ""


# ---- logprobs ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_token_logprob_top_k_matches_numpy(family_tokenizer, dtype):
    tokenizer, _ = family_tokenizer("llama3")
    vocab = len(tokenizer.get_vocab())
    row = log_softmax(np.random.default_rng(1).normal(scale=3.0, size=vocab)).astype(dtype)
    values = np.array(row.astype(mx.float32))
    order = np.argsort(-values, kind="stable")
    chosen = int(order[7])
    result = token_logprob(row, chosen, 5, tokenizer)
    assert (result.token_id, result.token) == (chosen, tokenizer.decode([chosen]))
    assert result.logprob == pytest.approx(values[chosen])
    assert [t.token_id for t in result.top] == order[:5].tolist()
    assert [t.logprob for t in result.top] == pytest.approx(values[order[:5]].tolist())
    assert [t.token for t in result.top] == [tokenizer.decode([int(i)]) for i in order[:5]]


def test_token_logprob_without_alternatives_and_with_more_than_the_vocabulary(family_tokenizer):
    tokenizer, _ = family_tokenizer("llama3")
    row = FOUR
    assert token_logprob(row, 2, 0, tokenizer).top == []
    assert token_logprob(row, 2, 0, tokenizer).logprob == pytest.approx(math.log(0.15))
    assert [t.token_id for t in token_logprob(row, 2, 10, tokenizer).top] == [0, 1, 2, 3]


def test_banned_tokens_report_a_finite_logprob(family_tokenizer):
    tokenizer, _ = family_tokenizer("llama3")
    row = mx.array([0.0, -math.inf, -math.inf])
    result = token_logprob(row, 1, 3, tokenizer)
    assert result.logprob == -9999.0
    assert [t.logprob for t in result.top] == [0.0, -9999.0, -9999.0]
