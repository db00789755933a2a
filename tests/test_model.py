"""Tests of the unified SE + SS network (gmsep.model)."""

import pytest
import torch
from gmsep.model import SeparatorOutput, UnifiedSeparator
from speechbrain.lobes.models.dual_path import (
    Decoder,
    Dual_Path_Model,
    Encoder,
    SBRNNBlock,
    SBTransformerBlock,
)

N = 16  # tiny number of encoder filters


def tiny_masknet(num_spks):
    def block():
        return SBTransformerBlock(1, N, 2, d_ffn=32, dropout=0.0)

    return Dual_Path_Model(
        N, N, block(), block(), num_layers=1, K=8, num_spks=num_spks
    )


def tiny_separator(num_spks=2, enhancer=True, decoder_kernel=4):
    torch.manual_seed(0)
    return UnifiedSeparator(
        Encoder(kernel_size=4, out_channels=N),
        tiny_masknet(num_spks),
        Decoder(N, 1, kernel_size=decoder_kernel, stride=2, bias=False),
        enhancer=tiny_masknet(1) if enhancer else None,
        num_spks=num_spks,
    )


@pytest.mark.parametrize("num_spks", [2, 3])
@pytest.mark.parametrize("batch,length", [(2, 101), (1, 257)])
def test_forward_shapes_match_the_mixture(num_spks, batch, length):
    model = tiny_separator(num_spks)
    mix, clean_mix = torch.randn(batch, length), torch.randn(batch, length)
    out = model(mix, clean_mix)
    assert isinstance(out, SeparatorOutput)
    assert out.est_sources.shape == (batch, length, num_spks)
    frames = (length - 4) // 2 + 1
    assert out.enhanced_feats.shape == (batch, N, frames)
    assert out.clean_feats.shape == (batch, N, frames)
    assert model(mix).clean_feats is None


def test_decoded_length_is_padded_or_cropped_to_the_input():
    mix = torch.randn(2, 101)
    # kernel 4: the decoder gives 100 samples (padded); kernel 8: 104 (cropped)
    for kernel in (4, 8):
        model = tiny_separator(decoder_kernel=kernel).eval()
        assert model.separate(mix).shape == (2, 101, 2)
        assert model.enhance(mix).shape == (2, 101)
    padded = tiny_separator(decoder_kernel=4).eval().separate(mix)
    assert torch.all(padded[:, -1] == 0)


def test_the_pipeline_is_encoder_enhancer_masknet_decoder():
    model = tiny_separator().eval()
    mix = torch.randn(2, 101)
    with torch.no_grad():
        mix_feats = model.encoder(mix)
        enhanced = mix_feats * model.enhancer(mix_feats)[0]
        masks = model.masknet(enhanced)
        expected = torch.stack(
            [model.decoder(enhanced * m)[:, :100] for m in masks], dim=-1
        )
        out = model(mix, mix)
        w, e = model.encode_enhance(mix)
    torch.testing.assert_close(w, mix_feats)
    torch.testing.assert_close(e, enhanced)
    torch.testing.assert_close(out.enhanced_feats, enhanced)
    # the SAME encoder encodes the clean mixture
    torch.testing.assert_close(out.clean_feats, mix_feats)
    torch.testing.assert_close(out.est_sources[:, :100], expected)
    torch.testing.assert_close(model.separate(mix), out.est_sources)
    torch.testing.assert_close(
        model.enhance(mix)[:, :100], model.decoder(enhanced)[:, :100]
    )


def test_baseline_without_enhancer():
    model = tiny_separator(enhancer=False)
    mix = torch.randn(2, 101)
    out = model(mix, torch.randn(2, 101))
    assert out.est_sources.shape == (2, 101, 2)
    assert out.enhanced_feats is None and out.clean_feats is None
    w, e = model.encode_enhance(mix)
    assert e is w
    assert model.enhance(mix).shape == (2, 101)


def test_clean_feats_receive_gradients_through_the_shared_encoder():
    model = tiny_separator()
    out = model(torch.randn(1, 101), torch.randn(1, 101))
    (grad,) = torch.autograd.grad(
        out.clean_feats.sum(), [model.encoder.conv1d.weight]
    )
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(101,), (1, 1, 101)])
def test_wrong_mixture_shape_raises(shape):
    model = tiny_separator()
    with pytest.raises(ValueError, match=r"mix of shape \(B, T\)"):
        model(torch.randn(shape))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model.enhance(torch.randn(shape))


def test_clean_mix_of_another_shape_raises():
    with pytest.raises(ValueError, match="clean_mix of the same shape"):
        tiny_separator()(torch.randn(2, 101), torch.randn(2, 100))


def test_masknet_with_a_wrong_number_of_speakers_raises():
    model = tiny_separator(num_spks=2)
    model.num_spks = 3
    with pytest.raises(ValueError, match="num_spks=3"):
        model(torch.randn(1, 101))


def paper_transformer(num_layers):
    return SBTransformerBlock(
        num_layers=num_layers,
        d_model=256,
        nhead=8,
        d_ffn=1024,
        dropout=0,
        use_positional_encoding=True,
        norm_before=True,
    )


def paper_sepformer_masknet(num_spks, num_layers, transformer_layers):
    return Dual_Path_Model(
        num_spks=num_spks,
        in_channels=256,
        out_channels=256,
        num_layers=num_layers,
        K=250,
        intra_model=paper_transformer(transformer_layers),
        inter_model=paper_transformer(transformer_layers),
        norm="ln",
        linear_layer_after_inter_intra=False,
        skip_around_intra=True,
    )


def paper_dprnn_masknet(num_spks, num_layers):
    def rnn():
        return SBRNNBlock(
            input_size=256,
            hidden_channels=256,
            num_layers=1,
            bidirectional=True,
        )

    return Dual_Path_Model(
        num_spks=num_spks,
        in_channels=256,
        out_channels=256,
        num_layers=num_layers,
        K=100,
        intra_model=rnn(),
        inter_model=rnn(),
        norm="ln",
        linear_layer_after_inter_intra=True,
        skip_around_intra=True,
    )


def millions_of_parameters(masknet, enhancer):
    model = UnifiedSeparator(
        Encoder(kernel_size=16, out_channels=256),
        masknet,
        Decoder(256, 1, kernel_size=16, stride=8, bias=False),
        enhancer=enhancer,
    )
    return sum(p.numel() for p in model.parameters()) / 1e6


def test_paper_sizes_of_the_sepformer_backbone():
    masknet = paper_sepformer_masknet(2, num_layers=2, transformer_layers=8)
    enhancer = paper_sepformer_masknet(1, num_layers=2, transformer_layers=1)
    assert millions_of_parameters(masknet, None) == pytest.approx(25.7, abs=0.1)
    assert millions_of_parameters(masknet, enhancer) == pytest.approx(
        29.2, abs=0.1
    )


def test_paper_sizes_of_the_dprnn_backbone():
    masknet = paper_dprnn_masknet(2, num_layers=6)
    enhancer = paper_dprnn_masknet(1, num_layers=2)
    assert millions_of_parameters(masknet, None) == pytest.approx(14.6, abs=0.1)
    assert millions_of_parameters(masknet, enhancer) == pytest.approx(
        19.7, abs=0.1
    )
