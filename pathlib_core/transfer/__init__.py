"""GEN-CNP: neural pathways predicted by a generator, and their transfer to other inputs of a class.

Lin et al. 2023 ("On Model Explanations with Transferable Neural Pathways", arXiv 2309.09887)
train a generator that reads the frozen target model's feature maps (a shallow and a deep layer)
and predicts, per input, a sparse binary *neural pathway* ("GEN-CNP"). Its objective asks for
per-instance sparsity (no fixed target), faithfulness (the model restricted to the pathway
behaves like the whole model) and class relevance (pathways of one class are similar). The
pathways of ``j`` samples of a class are combined into a class pathway that is transferred to
explain other samples of that class.

Only the abstract of the paper is known to us. Everything below beyond that is ours:

- the generator's architecture (``PathwayGenerator``): global average and max pooling of the
  shallow and the deep site, a two-layer MLP, one linear head per site with one logit per
  *channel*; the mask of a channel is broadcast over its positions;
- the relaxation: hard 0/1 masks in the forward pass, the sigmoid's gradient in the backward pass
  (``straight_through``), so each input's sparsity is whatever its own scores decide;
- the losses and their weights (``train_generator``): a KL divergence for faithfulness, the
  expected share of kept neurons for sparsity, a cosine-similarity contrast for class relevance;
- the class pathway (``class_pathway``): a vote of the ``j`` samples' pathways;
- the metrics' definitions (``faithfulness``, ``class_relevance``, ``transfer_accuracy``), of
  which "Average Drop" and "Increase in Confidence" are Chattopadhay et al.'s (Grad-CAM++, 2018).

The package holds one module per subject: ``generator`` (the generator network and the
straight-through masks), ``training`` (``train_generator``, its recipe and its cache),
``prediction`` (``generate_pathway``), ``class_pathways`` (``class_pathway``, ``expand``) and
``measures`` (``faithfulness``, ``class_relevance``, ``transfer_accuracy``); every public name is
re-exported here, so ``transfer.X`` works for all of them.

A generated pathway is an ordinary ``Pathway`` (element masks of every site), so ``restrict``,
``Pathway.iou``, ``Pathway.pairwise_iou`` and ``restricted_input_gradient`` work on it. The
target model is never changed: the generator is trained with ``torch.autograd.grad`` on its own
parameters.
"""

from .class_pathways import check_pathway, class_pathway, expand
from .generator import (
    HEAD_BIAS,
    PathwayGenerator,
    broadcast_channels,
    capture_sites,
    check_site_order,
    straight_through,
)
from .measures import (
    ClassRelevance,
    Faithfulness,
    Transfer,
    class_relevance,
    faithfulness,
    transfer_accuracy,
)
from .prediction import generate_pathway
from .training import HISTORY_TERMS, GeneratorTraining, train_generator

__all__ = [
    "HEAD_BIAS",
    "HISTORY_TERMS",
    "ClassRelevance",
    "Faithfulness",
    "GeneratorTraining",
    "PathwayGenerator",
    "Transfer",
    "broadcast_channels",
    "capture_sites",
    "check_pathway",
    "check_site_order",
    "class_pathway",
    "class_relevance",
    "expand",
    "faithfulness",
    "generate_pathway",
    "straight_through",
    "train_generator",
    "transfer_accuracy",
]

# analysis (the transferable-pathways chapter's measures)
from . import analysis as analysis  # the chapter's controls: transfer.analysis.X
