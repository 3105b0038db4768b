"""The built-in Denoiser: Part B's class-conditioned UNet on MNIST, which every machine can run.

- Images are 1 x 28 x 28 in [0, 1], as Part B trained them.
- The schedule is Part B's linear one, rebuilt from the checkpoint (T = 300, beta 1e-4 -> 0.02 by default).
- The model is called as model(x_t, c, t / T) with c an (N, 10) condition vector.
- Prompts name a digit ("a 3", "an 8", "3", "digit 3", "the digit three", "a seven"); the condition is its
  one-hot vector. The null condition is the zero vector, which the model saw in training with probability
  p_uncond (classifier-free guidance training).

What plays DeepFloyd's "a high quality photo" (the content-free prompt of A.1.3-A.1.7):
- without guidance (one-step, iterative denoising, the 1.5 samples) it is the null condition: the
  unconditional model, which describes the whole data set, exactly as the generic prompt does for IF;
- with guidance the null condition would make eps_c = eps_u and CFG a no-op, and the MNIST model has no
  "good digit, any class" condition. So 1.6 guides each sample towards a digit drawn uniformly at random
  (sampling k ~ p(k), then x ~ p_gamma(x | k) is the guided counterpart of sampling the whole distribution),
  and SDEdit and inpainting guide towards the digit the input already shows (its label, the digit drawn, or
  the digit that starts a user file's name): the trained condition closest to "a better version of this
  image". See difflab.experiments.part_a, which makes these choices.
"""

from __future__ import annotations

import os
import re

import torch
from torch import Tensor
from torch.nn import functional as F

from difflab import DifflabError
from difflab.checkpoint import load_model
from difflab.runtime import map_in_chunks
from difflab.schedule import NoiseSchedule

NUM_CLASSES = 10
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Words a prompt may wrap around its digit: "a 3", "the digit three", "an image of the number 8", ...
FILLER_WORDS = {"a", "an", "the", "digit", "number", "numeral", "of", "image", "picture", "photo", "drawing",
                "handwritten", "hand", "written", "high", "quality", "mnist"}
ACCEPTED_FORMS = "'a 3', 'an 8', '3', 'digit 3', 'the digit three'"

MAX_PROMPT_CHARS = 200  # as config/schema.yaml's maxLength for prompts


def parse_digit_prompt(prompt: str) -> int:
    """The digit a prompt names: 'a 3' -> 3, 'an 8' -> 8, 'the digit three' -> 3, '7.' -> 7.

    The prompt is lower-cased and split into words (punctuation dropped); after removing filler words
    (a, an, the, digit, number, ...) exactly one word must remain, and it must be 0-9 or zero..nine.
    Anything else raises DifflabError naming the prompt and the accepted forms.
    """
    text = str(prompt)
    if len(text) > MAX_PROMPT_CHARS:
        raise DifflabError(f"prompt {text[:40]!r}... is {len(text)} characters long; expected at most "
                           f"{MAX_PROMPT_CHARS}, e.g. {ACCEPTED_FORMS}")
    words = [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]
    rest = [w for w in words if w not in FILLER_WORDS]
    if len(rest) == 1:
        word = rest[0]
        if len(word) == 1 and word.isdigit():
            return int(word)
        if word in DIGIT_WORDS:
            return DIGIT_WORDS.index(word)
    what = "is empty" if not words else "names no single digit"
    raise DifflabError(f"prompt {prompt!r} {what}; the MNIST backend accepts a digit, e.g. {ACCEPTED_FORMS}")


class MnistDenoiser:
    """A Denoiser over a Part B class-conditioned UNet checkpoint."""

    image_shape = (1, 28, 28)
    value_range = (0.0, 1.0)

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule, device: torch.device, epoch: int | None = None,
                 hidden: int | None = None, batch_size: int = 1000):
        self.model = model.to(device).eval()
        self.batch_size = batch_size  # images per forward pass; larger batches are split
        self.schedule = schedule.to(device)
        self.alphas_cumprod = self.schedule.alphas_cumprod
        self.device = torch.device(device)
        self.epoch = epoch
        self.hidden = hidden

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "MnistDenoiser":
        """Load a Part B checkpoint (architecture 'class') and its linear schedule."""
        model, ckpt = load_model(path, device)
        arch = getattr(ckpt, "architecture", "classifier")  # load_model returns a plain dict for the classifier only
        if arch != "class":
            raise DifflabError(f"{path}: architecture is {arch!r}; the MNIST backend needs a "
                               "class-conditioned DDPM checkpoint ('class')")
        return cls(model, ckpt.schedule(), torch.device(device), ckpt.epoch, ckpt.hidden)

    @property
    def num_timesteps(self) -> int:
        return self.schedule.num_timesteps

    @torch.no_grad()
    def predict_noise(self, x_t: Tensor, t: int, cond: Tensor) -> tuple[Tensor, None]:
        """eps_theta(x_t, t, c) with t passed as t / T, in chunks of `batch_size`; no learned variance."""
        t_norm = torch.full((x_t.shape[0],), t / self.num_timesteps, device=x_t.device, dtype=x_t.dtype)
        cond = cond.to(x_t.dtype)
        chunks, self.batch_size = map_in_chunks(lambda a, b: self.model(x_t[a:b], cond[a:b], t_norm[a:b]),
                                                x_t.shape[0], self.batch_size, f"in the MNIST backend at timestep {t}")
        return torch.cat(chunks), None

    def encode(self, prompt: str) -> Tensor:
        """The (1, 10) one-hot condition of a digit prompt."""
        return self.one_hot([parse_digit_prompt(prompt)])

    def one_hot(self, digits) -> Tensor:
        """(N, 10) one-hot conditions for a list of digits."""
        return F.one_hot(torch.as_tensor(list(digits), device=self.device).long(), NUM_CLASSES).float()

    def null_condition(self, batch: int) -> Tensor:
        """The zero vector: 'no class'."""
        return torch.zeros(batch, NUM_CLASSES, device=self.device)
