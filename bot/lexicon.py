"""The field's vocabulary: ML acronyms and their expansions, synonyms, and spelling variants.

Each `Entry` is one concept. Any of its `forms` typed in a topic stands for the whole concept,
and a paper that uses any form matches it (that is how `MoE` finds "mixture-of-experts" and
"mixture of experts" finds "MoE"). `narrower` forms are kinds of the concept (LoRA for PEFT): they
match too, but rank lower and are shown as related. Forms are written as a user or an abstract
would write them; matching is by stemmed tokens, so plurals, hyphens and case need no entries.

To add a concept: append an Entry, keep the forms unambiguous inside ML papers (an acronym that
means two common things, like "DP" or "SD", is left out), and add a case to tests/test_lexicon.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One concept: its display label, equivalent forms, and narrower forms."""

    label: str
    forms: tuple[str, ...]
    narrower: tuple[str, ...] = ()


def _e(label: str, *forms: str, narrower: tuple[str, ...] = ()) -> Entry:
    return Entry(label, (label, *forms), narrower)


ENTRIES: tuple[Entry, ...] = (
    # Architectures
    _e("mixture of experts", "MoE", "sparse experts", narrower=("expert routing",)),
    _e("state space model", "SSM", "state-space model", narrower=("mamba",)),
    _e(
        "graph neural network",
        "GNN",
        "graph neural net",
        narrower=(
            "graph convolutional network",
            "GCN",
            "graph attention network",
            "message passing",
            "graph representation learning",
            "graph transformer",
            "graph learning",
            "link prediction",
            "hypergraph",
            "graph convolution",
        ),
    ),
    _e("graph convolutional network", "GCN", "graph convolution network"),
    _e("vision transformer", "ViT"),
    _e("diffusion transformer", "DiT"),
    _e("large language model", "LLM"),
    _e(
        "vision-language model",
        "VLM",
        "vision language model",
        "multimodal large language model",
        "MLLM",
    ),
    _e("convolutional neural network", "CNN", "ConvNet", "convolutional network"),
    _e("recurrent neural network", "RNN"),
    _e("generative adversarial network", "GAN"),
    _e("variational autoencoder", "VAE"),
    _e("neural radiance field", "NeRF"),
    _e("Gaussian splatting", "3DGS", "3D Gaussian splatting"),
    _e("spiking neural network", "SNN"),
    _e("Kolmogorov-Arnold network", "KAN"),
    _e("physics-informed neural network", "PINN"),
    _e("multilayer perceptron", "MLP", "multi-layer perceptron"),
    _e("feed-forward network", "FFN", "feedforward network"),
    _e("hypernetwork", "hyper-network"),
    _e("sparse autoencoder", "SAE"),
    _e("latent diffusion model", "LDM"),
    _e("denoising diffusion probabilistic model", "DDPM"),
    _e("recommender system", "recommendation system", "recommender"),
    # Attention and inference
    _e("KV cache", "key-value cache", "KV caching", "key-value caching", "KVCache"),
    _e("key-value", "KV"),
    _e("grouped-query attention", "GQA"),
    _e("multi-head attention", "MHA"),
    _e("multi-query attention", "MQA"),
    _e("FlashAttention", "flash attention"),
    _e("linear attention"),
    _e("speculative decoding", "speculative sampling", "draft model"),
    _e(
        "LLM serving",
        "LLM inference serving",
        "model serving",
        "serving system",
        "inference serving",
        narrower=(
            "LLM inference",
            "large language model inference",
            "inference system",
            "inference throughput",
        ),
    ),
    _e("prefill", "prefilling", "prefill-decode disaggregation"),
    _e("long context", "long-context", "context length", "long sequence"),
    _e(
        "on-device",
        "edge device",
        "mobile device",
        "on device",
        "edge inference",
        "resource-constrained device",
        "low-resource device",
        "mobile",
    ),
    _e("processing-in-memory", "PIM", "processing in memory", "in-memory computing"),
    _e(
        "test-time scaling", "test-time compute", "inference-time scaling", "inference-time compute"
    ),
    _e("test-time adaptation", "TTA"),
    _e("test-time training", "TTT"),
    # Compression
    _e(
        "quantization",
        "quantized",
        "low-bit",
        narrower=("post-training quantization", "quantization-aware training", "binarization"),
    ),
    _e(
        "post-training quantization",
        "PTQ",
        "post training quantization",
        narrower=(
            "zero-shot quantization",
            "data-free quantization",
            "4-bit",
            "low-bit quantization",
            "weight quantization",
        ),
    ),
    _e("quantization-aware training", "QAT", "quantization aware training"),
    _e("binarization", "binary neural network", "binarized", "1-bit"),
    _e("pruning", "pruned", narrower=("sparsification", "structured sparsity")),
    _e(
        "knowledge distillation",
        "KD",
        "distillation",
        "distilling knowledge",
        "teacher-student",
        "distill",
    ),
    _e(
        "model compression",
        "compressing models",
        "network compression",
        narrower=("pruning", "quantization", "knowledge distillation"),
    ),
    _e("low-rank adaptation", "LoRA", "low rank adaptation", narrower=("QLoRA",)),
    _e(
        "parameter-efficient fine-tuning",
        "PEFT",
        "parameter efficient fine tuning",
        "parameter-efficient tuning",
        "parameter-efficient transfer learning",
        "parameter-efficient adaptation",
        narrower=(
            "LoRA",
            "low-rank adaptation",
            "adapter tuning",
            "prefix tuning",
            "prompt tuning",
            "efficient transfer learning",
            "memory-efficient transfer learning",
            "parameter-efficient",
            "parallel tuning",
            "side tuning",
        ),
    ),
    _e("neural architecture search", "NAS", "architecture search"),
    # Training
    _e("federated learning", "FL", "federated"),
    _e(
        "distributed training",
        "parallel training",
        "data parallelism",
        narrower=("pipeline parallelism", "tensor parallelism", "model parallelism"),
    ),
    _e("pipeline parallelism", "pipeline parallel", "pipeline-parallel training"),
    _e("tensor parallelism", "tensor parallel"),
    _e("model parallelism", "model parallel"),
    _e(
        "continual learning",
        "lifelong learning",
        "incremental learning",
        "class-incremental learning",
        "catastrophic forgetting",
    ),
    _e("meta-learning", "meta learning", "learning to learn"),
    _e("transfer learning", "domain adaptation"),
    _e("self-supervised learning", "SSL", "self-supervised"),
    _e("contrastive learning", "contrastive"),
    _e("in-context learning", "ICL"),
    _e("chain of thought", "CoT", "chain-of-thought"),
    _e("supervised fine-tuning", "SFT"),
    _e("stochastic gradient descent", "SGD"),
    _e("hyperparameter optimization", "HPO", "hyperparameter tuning"),
    _e("zeroth-order optimization", "zeroth-order", "derivative-free optimization"),
    _e("fine-tuning", "finetuning", "fine tuning"),
    # Reinforcement learning and alignment
    _e("reinforcement learning", "RL"),
    _e("reinforcement learning from human feedback", "RLHF"),
    _e("reinforcement learning with verifiable rewards", "RLVR"),
    _e("direct preference optimization", "DPO"),
    _e("proximal policy optimization", "PPO"),
    _e("multi-agent reinforcement learning", "MARL"),
    _e("Monte Carlo tree search", "MCTS"),
    _e(
        "preference learning",
        "preference optimization",
        "preference alignment",
        narrower=("RLHF", "direct preference optimization"),
    ),
    # Tasks and applications
    _e("retrieval-augmented generation", "RAG", "retrieval augmented generation"),
    _e("text-to-speech", "TTS", "speech synthesis"),
    _e("automatic speech recognition", "ASR", "speech recognition"),
    _e("natural language processing", "NLP"),
    _e("neural machine translation", "NMT", "machine translation"),
    _e("named entity recognition", "NER"),
    _e("visual question answering", "VQA"),
    _e("question answering", "QA"),
    _e("optical character recognition", "OCR"),
    _e("out-of-distribution", "OOD", "distribution shift"),
    _e("object detection", "object detector"),
    _e("time series", "time-series", "temporal forecasting"),
    _e(
        "interpretability",
        "explainability",
        "explainable AI",
        "XAI",
        "interpretable",
        "explainable",
    ),
    _e("concept bottleneck model", "CBM", "concept bottleneck"),
    _e("information bottleneck", "IB"),
    _e("differential privacy", "differentially private"),
    _e("fully homomorphic encryption", "FHE", "homomorphic encryption"),
    _e(
        "secure multi-party computation",
        "secure computation",
        "multi-party computation",
        "multiparty computation",
        "MPC",
    ),
    _e(
        "private inference",
        "privacy-preserving inference",
        "secure inference",
        "private LLM",
        "cryptographic inference",
    ),
    _e(
        "split computing",
        "split inference",
        "split learning",
        "edge-assisted",
        "edge computing",
        "collaborative inference",
    ),
    _e(
        "decentralized learning",
        "decentralized training",
        "decentralized optimization",
        "fully decentralized",
        "gossip learning",
        "decentralized federated learning",
        "decentralized",
    ),
    _e(
        "communication efficiency",
        "communication-efficient",
        "communication cost",
        "communication overhead",
        "communication bottleneck",
        "communication volume",
        "low-bandwidth",
        "gradient compression",
        "communication compression",
        "communication-computation overlap",
        "overlapping communication",
    ),
)

# British spellings folded to American ones, so `quantisation` finds `quantization` and back.
_SUFFIX_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<=[a-z]{3})is(ation|ations|ational|e|es|ed|ing|er|ers)$"), r"iz\1"),
    (re.compile(r"(?<=[a-z]{3})ys(e|es|ed|ing)$"), r"yz\1"),  # analyse -> analyze
)
_WORD_RULES: dict[str, str] = {
    **{
        b: a
        for b, a in (
            ("behaviour", "behavior"),
            ("behaviours", "behaviors"),
            ("behavioural", "behavioral"),
            ("colour", "color"),
            ("colours", "colors"),
            ("neighbour", "neighbor"),
            ("neighbours", "neighbors"),
            ("neighbouring", "neighboring"),
            ("neighbourhood", "neighborhood"),
            ("favour", "favor"),
            ("labour", "labor"),
            ("flavour", "flavor"),
            ("rumour", "rumor"),
            ("centre", "center"),
            ("centres", "centers"),
            ("centred", "centered"),
            ("fibre", "fiber"),
            ("metre", "meter"),
            ("litre", "liter"),
            ("defence", "defense"),
            ("offence", "offense"),
            ("licence", "license"),
            ("catalogue", "catalog"),
            ("dialogue", "dialog"),
            ("dialogues", "dialogs"),
            ("programme", "program"),
            ("programmes", "programs"),
            ("grey", "gray"),
            ("aluminium", "aluminum"),
            ("artefact", "artifact"),
            ("artefacts", "artifacts"),
            ("judgement", "judgment"),
            ("ageing", "aging"),
        )
    },
}
# Doubled l before a suffix ("modelling") only for words where it is the British spelling.
_DOUBLE_L = re.compile(
    r"^(model|label|signal|channel|level|travel|cancel|tunnel|fuel|marshal)l(ing|ed|er|ers)$"
)
_PROTECTED = frozenset(
    # Words the suffix rules would bend but that are spelled the same in both Englishes.
    """advise advised advising precise concise promise promised promising premise premises
    exercise exercises expertise enterprise compromise surprise surprised surprising
    otherwise revise revised revising supervise supervised supervising noise noises denoise
    denoised denoising raise raised raising praise rise rising arise arises arising paradise
    franchise merchandise devise devised disguise chemise analysis paralysis""".split()
)


def american(word: str) -> str:
    """Fold a lower-case British spelling to the American one (quantisation -> quantization)."""
    if word in _WORD_RULES:
        return _WORD_RULES[word]
    if word in _PROTECTED or len(word) < 6:
        return word
    match = _DOUBLE_L.match(word)
    if match:
        return match.group(1) + match.group(2)
    for pattern, replacement in _SUFFIX_RULES:
        folded, count = pattern.subn(replacement, word)
        if count:
            return folded
    return word


def british(word: str) -> str | None:
    """The British spelling of a lower-case American word, when it has a different one."""
    for brit, amer in _WORD_RULES.items():
        if amer == word:
            return brit
    if word in _PROTECTED or len(word) < 6:
        return None
    folded = re.sub(r"(?<=[a-z]{3})iz(ation|ations|ational|e|es|ed|ing|er|ers)$", r"is\1", word)
    if folded != word:
        return folded
    folded = re.sub(r"(?<=[a-z]{3})yz(e|es|ed|ing)$", r"ys\1", word)
    return folded if folded != word else None


def suggestions(typed: str, limit: int) -> list[tuple[str, str]]:
    """Lexicon forms containing `typed` as (label to show, topic text), prefix matches first."""
    needle = typed.strip().lower()
    found: list[tuple[bool, str, str]] = []
    for entry in ENTRIES:
        for form in entry.forms:
            if needle in form.lower():
                shown = form if form == entry.label else f"{form} ({entry.label})"
                found.append((not form.lower().startswith(needle), shown, form))
    found.sort(key=lambda f: (f[0], len(f[2])))
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for _, shown, form in found:
        if form.lower() not in seen:
            seen.add(form.lower())
            out.append((shown, form))
    return out[:limit]
