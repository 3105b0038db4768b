"""A tiny, randomly initialised DeepFloyd-IF-like pipeline built from config dicts (no download), saved as a diffusers
folder the real loading code opens: stage I (UNet with 6 output channels, the IF scheduler config), a T5 encoder from a
small T5Config, and an in-memory WordLevel tokenizer wrapped as PreTrainedTokenizerFast; optionally stage II.

Sizes: 16 x 16 images, d_model 32 (so prompt embeddings are (1, 77, 32)); about 3.5 MB on disk in float32.
UNet and scheduler values: /work/shared/notes/models_metrics_offline.md section 1.7 (diffusers' own IF test
components, made smaller), scheduler as scripts/convert_if.py writes it for stage I.
"""

from __future__ import annotations

from pathlib import Path

import torch

D_MODEL = 32
SIZE = 16
WORDS = ("a high quality photo of the an oil painting snowy mountain village man wearing hat rocket ship dog "
         "pencil skull waterfalls lithograph campfire people around old hipster barista amalfi cost").split()


def tiny_tokenizer():
    """A WordLevel tokenizer over WORDS (unknown words -> <unk>) that appends </s>, as T5's does."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_text_encoder():
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=64, d_model=D_MODEL, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", dropout_rate=0.0,
                      pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(config).eval()


def tiny_unet(stage: int = 1):
    from diffusers import UNet2DConditionModel

    common = dict(layers_per_block=1, block_out_channels=(8, 16), down_block_types=("ResnetDownsampleBlock2D",
                  "SimpleCrossAttnDownBlock2D"), up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
                  mid_block_type="UNetMidBlock2DSimpleCrossAttn", cross_attention_dim=D_MODEL, attention_head_dim=8,
                  encoder_hid_dim=D_MODEL, encoder_hid_dim_type="text_proj", addition_embed_type="text",
                  addition_embed_type_num_heads=2, norm_num_groups=8, resnet_time_scale_shift="scale_shift",
                  act_fn="gelu", cross_attention_norm="group_norm")
    if stage == 1:
        return UNet2DConditionModel(sample_size=SIZE, in_channels=3, out_channels=6, **common)
    # stage II: the low-resolution image (upscaled) is concatenated to x_t, and its noise level is a class embedding
    return UNet2DConditionModel(sample_size=4 * SIZE, in_channels=6, out_channels=6, class_embed_type="timestep",
                                mid_block_scale_factor=1.414, time_embedding_act_fn="gelu", time_embedding_dim=32, **common)


def if_scheduler(thresholding: bool = True, sample_max_value: float = 1.5):
    """The IF stage I scheduler config (stage II: sample_max_value 1.0)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", variance_type="learned_range",
                         thresholding=thresholding, dynamic_thresholding_ratio=0.95, sample_max_value=sample_max_value,
                         prediction_type="epsilon")


def tiny_pipeline(seed: int = 0, text: bool = True):
    """An IFPipeline with tiny random weights (seeded); with text=False, no tokenizer or text encoder."""
    from diffusers import IFPipeline

    torch.manual_seed(seed)
    return IFPipeline(tokenizer=tiny_tokenizer() if text else None, text_encoder=tiny_text_encoder() if text else None,
                      unet=tiny_unet().eval(), scheduler=if_scheduler(), safety_checker=None, feature_extractor=None,
                      watermarker=None, requires_safety_checker=False)


def tiny_stage_2(seed: int = 1):
    from diffusers import DDPMScheduler, IFSuperResolutionPipeline

    torch.manual_seed(seed)
    return IFSuperResolutionPipeline(tokenizer=None, text_encoder=None, unet=tiny_unet(stage=2).eval(),
                                     scheduler=if_scheduler(sample_max_value=1.0),
                                     image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
                                     safety_checker=None, feature_extractor=None, watermarker=None,
                                     requires_safety_checker=False)


def save_tiny_pipeline(folder: Path, seed: int = 0, text: bool = True) -> Path:
    """Write the tiny stage I pipeline to `folder` (diffusers layout) and return it."""
    tiny_pipeline(seed, text).save_pretrained(str(folder))
    return folder


def save_tiny_stage_2(folder: Path, seed: int = 1) -> Path:
    tiny_stage_2(seed).save_pretrained(str(folder))
    return folder


def random_embeds(prompts, seed: int = 0) -> dict:
    """{prompt: (1, 77, D_MODEL) float32} drawn from N(0, 1): precomputed embeddings without T5."""
    g = torch.Generator().manual_seed(seed)
    return {p: torch.randn(1, 77, D_MODEL, generator=g) for p in dict.fromkeys(prompts)}
