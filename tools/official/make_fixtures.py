"""Write the official-equivalence fixtures of tests/test_official.py from the official SST code.

    python tools/official/make_fixtures.py PATH/TO/SST [--out tests/fixtures/official]

PATH/TO/SST is a checkout of the public repository dslisleedh/SST (its commit is recorded). Nothing of
it enters this project: its two network files are copied into a temporary folder, where
- the bfloat16 casts of q, k and v in its attention are replaced by float32 (the fixtures compare float32);
- `basicsr.utils.registry` is a stub (the network only registers itself there);
and the official classes are imported from that copy. A fixture may name a patch (OFFICIAL_PATCHES) that
is applied to a second copy, imported under its own package name: the official WindowAttention2D hardcodes
`rope_mixed = True`, so the axial RoPE fixture runs a copy where that line reads `rope_mixed = False`
(fixed axial frequencies, not saved); the generator stops if the line is not found exactly once. It needs
`einops` importable (install it outside this project, e.g. `pip install --target /tmp/extra einops` and
PYTHONPATH=/tmp/extra).

The fixtures cover RIB (both upsamplers, x2/x3/x4, a map smaller than a window, shifted layers), RPB (SDPA)
and NoPE, and the official code's other positional encodings: RoPEViT mixed (learnable `rope_freqs`
(2, heads, 4), head dim 6 padded to 8 for the rotation, a 12 window over a 9x10 map), FlashBias (learned
per-token factors of ranks 4 and 6, zero at init), RoPEViT axial (the patch above; head dim 8, 5 and 7
windows), RIBSiren (sine hidden layer, omega0 30, raw coordinates) and CPE (`x + dwconv3x3(x)` before
attention without bias; shifted 6x6 windows).

For each small network below it seeds torch, builds the official class, perturbs every parameter (so
zero-initialised biases and small factors matter), and writes
- `<name>.pth`: a BasicSR file, {"params_ema": state_dict, "params": state_dict + 1 (a decoy)};
- `<name>.io.pt`: {"input": (1, 3, h, w), "output": the official float32 output};
and `manifest.json`: the official commit, torch version, and per fixture its file names, the suite
network that equals it (`suite`: preset, bias, scale, overrides as model fields), the input size, the
official kwargs and the patch of the official code it ran (`official_patch`, null for none).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch

# name -> (official SST kwargs, suite preset and overrides, input height and width). Small widths and
# depths; both upsampler kinds; x2, x3 and x4; every official positional encoding; windows that are no powers
# of two; equal windows (shifted layers); a map smaller than a window (padded up to it). New fixtures go at
# the end: a fixture's seeds are its index here. The later ones are narrower (dim 4 to 12): a .pth holds two
# state dicts at about 250 bytes per tensor besides the data, and the folder must stay under 2 MiB.
FIXTURES = {
    "rib_pixelshuffle_x2": (
        dict(
            dim=24,
            window_sizes=[4, 8, 6],
            num_heads=[2, 2, 2],
            ranks=[4, 6, 5],
            n_blocks=2,
            exp_ratio=1.5,
            attn_type="RIB",
            rib_hidden_dim=32,
            rib_n_freqs=10,
            upscaling_factor=2,
            upsampler_type="pixelshuffle",
            gate_type="DWC",
            intermediate_dim=16,
        ),
        dict(
            preset="base",
            bias="rib",
            scale=2,
            overrides=dict(
                dim=24, heads=2, window_sizes=[4, 8, 6], ranks=[4, 6, 5], n_blocks=2, exp_ratio=1.5, upsampler_dim=16
            ),
        ),
        (13, 11),
    ),
    "rib_direct_x4_small_map": (
        dict(
            dim=24,
            window_sizes=[4, 16, 12],
            num_heads=[3, 3, 3],
            ranks=[4, 4, 6],
            n_blocks=1,
            exp_ratio=1.5,
            attn_type="RIB",
            rib_hidden_dim=32,
            rib_n_freqs=10,
            upscaling_factor=4,
            upsampler_type="pixelshuffle_direct",
            gate_type="DWC",
        ),
        dict(
            preset="light",
            bias="rib",
            scale=4,
            overrides=dict(dim=24, heads=3, window_sizes=[4, 16, 12], ranks=[4, 4, 6], n_blocks=1),
        ),
        (10, 9),  # smaller than the 16 and 12 windows: padded up to them
    ),
    "rib_direct_x3_shifted": (
        dict(
            dim=16,
            window_sizes=[8, 8],
            num_heads=[2, 2],
            ranks=[8, 8],
            n_blocks=1,
            exp_ratio=2,
            attn_type="RIB",
            rib_hidden_dim=32,
            rib_n_freqs=10,
            upscaling_factor=3,
            upsampler_type="pixelshuffle_direct",
            gate_type="DWC",
        ),
        dict(
            preset="light+",
            bias="rib",
            scale=3,
            overrides=dict(dim=16, heads=2, window_sizes=[8, 8], ranks=[8, 8], n_blocks=1, exp_ratio=2.0),
        ),
        (12, 17),
    ),
    "rpb_pixelshuffle_x4": (
        dict(
            dim=16,
            window_sizes=[4, 4, 6],
            num_heads=[2, 2, 2],
            ranks=None,
            n_blocks=1,
            exp_ratio=2,
            attn_type="SDPA",
            rib_hidden_dim=32,
            rib_n_freqs=10,
            upscaling_factor=4,
            upsampler_type="pixelshuffle",
            gate_type="DWC",
            intermediate_dim=8,
        ),
        dict(
            preset="large",
            scale=4,
            bias="rpb",
            overrides=dict(
                dim=16, heads=2, window_sizes=[4, 4, 6], ranks=[1, 1, 1], n_blocks=1, exp_ratio=2.0, upsampler_dim=8
            ),
        ),
        (9, 10),
    ),
    "none_direct_x2": (
        dict(
            dim=16,
            window_sizes=[4, 8],
            num_heads=[2, 2],
            ranks=None,
            n_blocks=1,
            exp_ratio=2,
            attn_type="NoPE",
            rib_hidden_dim=32,
            rib_n_freqs=10,
            upscaling_factor=2,
            upsampler_type="pixelshuffle_direct",
            gate_type="DWC",
        ),
        dict(
            preset="light",
            scale=2,
            bias="none",
            overrides=dict(dim=16, heads=2, window_sizes=[4, 8], ranks=[1, 1], n_blocks=1, exp_ratio=2.0),
        ),
        (7, 6),  # smaller than the 8 window
    ),
    "rope_mixed_pixelshuffle_x2": (
        dict(
            dim=12,
            window_sizes=[4, 12],
            num_heads=[2, 2],
            ranks=None,
            n_blocks=1,
            exp_ratio=1,
            attn_type="RoPEViT",
            rib_hidden_dim=32,
            rib_n_freqs=10,
            upscaling_factor=2,
            upsampler_type="pixelshuffle",
            gate_type="DWC",
            intermediate_dim=4,
        ),
        dict(
            preset="base",
            scale=2,
            bias="rope",
            overrides=dict(
                dim=12,
                heads=2,
                window_sizes=[4, 12],
                ranks=[1, 1],
                n_blocks=1,
                exp_ratio=1.0,
                upsampler_dim=4,
                rope_form="mixed",
            ),
        ),
        (9, 10),  # smaller than the 12 window; head dim 6, rotated padded to 8
    ),
    "flashbias_pixelshuffle_x4": (
        dict(
            dim=4,
            window_sizes=[4, 6],
            num_heads=[2, 2],
            ranks=[4, 6],
            n_blocks=1,
            exp_ratio=1.5,
            attn_type="FlashBias",
            rib_hidden_dim=32,
            rib_n_freqs=10,
            upscaling_factor=4,
            upsampler_type="pixelshuffle",
            gate_type="DWC",
            intermediate_dim=2,
        ),
        dict(
            preset="large",
            scale=4,
            bias="flashbias",
            overrides=dict(
                dim=4, heads=2, window_sizes=[4, 6], ranks=[4, 6], n_blocks=1, exp_ratio=1.5, upsampler_dim=2
            ),
        ),
        (6, 7),  # the 6 window pads 7 to 12
    ),
    "rope_axial_direct_x3": (
        dict(
            dim=8,
            window_sizes=[5, 7],
            num_heads=[1, 1],
            ranks=None,
            n_blocks=1,
            exp_ratio=1.5,
            attn_type="RoPEViT",
            rib_hidden_dim=32,
            rib_n_freqs=10,
            upscaling_factor=3,
            upsampler_type="pixelshuffle_direct",
            gate_type="DWC",
        ),
        dict(
            preset="light+",
            scale=3,
            bias="rope",
            overrides=dict(
                dim=8, heads=1, window_sizes=[5, 7], ranks=[1, 1], n_blocks=1, exp_ratio=1.5, rope_form="axial"
            ),
        ),
        (8, 9),  # head dim 8: two frequencies per axis
    ),
    "ribsiren_direct_x2": (
        dict(
            dim=4,
            window_sizes=[6, 4],
            num_heads=[2, 2],
            ranks=[3, 5],
            n_blocks=1,
            exp_ratio=1.5,
            attn_type="RIBSiren",
            rib_hidden_dim=8,
            rib_n_freqs=10,
            upscaling_factor=2,
            upsampler_type="pixelshuffle_direct",
            gate_type="DWC",
        ),
        dict(
            preset="light",
            scale=2,
            bias="rib-siren",
            overrides=dict(dim=4, heads=2, window_sizes=[6, 4], ranks=[3, 5], n_blocks=1, exp_ratio=1.5, mlp_hidden=8),
        ),
        (12, 10),  # raw coordinates only: rib_n_freqs is ignored for RIBSiren
    ),
    "cpe_direct_x2": (
        dict(
            dim=4,
            window_sizes=[6, 6],
            num_heads=[2, 2],
            ranks=None,
            n_blocks=1,
            exp_ratio=2,
            attn_type="CPE",
            rib_hidden_dim=32,
            rib_n_freqs=10,
            upscaling_factor=2,
            upsampler_type="pixelshuffle_direct",
            gate_type="DWC",
        ),
        dict(
            preset="light",
            scale=2,
            bias="cpe",
            overrides=dict(dim=4, heads=2, window_sizes=[6, 6], ranks=[1, 1], n_blocks=1, exp_ratio=2.0),
        ),
        (11, 13),  # padded to 12 x 18; the second layer is shifted by 3
    ),
}

# name -> (a line of arch_utils.py that must occur exactly once, its replacement). The official code fixes
# RoPE to the mixed form in WindowAttention2D.__init__; the axial form is reachable only by editing that line.
OFFICIAL_PATCHES: dict[str, tuple[str, str]] = {
    "rope_mixed=False": ("rope_mixed = True  # Learnable frequencies", "rope_mixed = False  # patched: axial RoPE"),
}
# fixture name -> its patch in OFFICIAL_PATCHES; the others run the official code as copied.
FIXTURE_PATCHES: dict[str, str] = {"rope_axial_direct_x3": "rope_mixed=False"}


def official_module(
    checkout: Path, workdir: Path, patch: str | None = None, float32_attention: bool = True
) -> types.ModuleType:
    """The official sst_arch module, imported from a patched temporary copy (one package per `patch` and
    attention dtype). `float32_attention=False` keeps the official bfloat16 casts (the GPU comparison)."""
    name = "official_sst" if patch is None else "official_sst_" + re.sub(r"\W", "_", patch)
    package = workdir / (name if float32_attention else name + "_bf16")
    package.mkdir()
    (package / "__init__.py").write_text("")
    utils = (checkout / "sst" / "archs" / "arch_utils.py").read_text()
    # float32 attention: the official kernel path casts q, k, v (and RIB's factors) to bfloat16.
    patched, count = re.subn(r"torch\.bfloat16", "torch.float32", utils)
    if count == 0:
        raise SystemExit("arch_utils.py has no bfloat16 cast to replace: is this the official SST code?")
    if not float32_attention:
        patched = utils
    if patch is not None:
        line, replacement = OFFICIAL_PATCHES[patch]
        # whole lines only, so a changed official line stops the generator instead of patching nothing
        patched, count = re.subn(rf"^(\s*){re.escape(line)}\s*$", rf"\g<1>{replacement}", patched, flags=re.MULTILINE)
        if count != 1:
            raise SystemExit(f"patch {patch}: arch_utils.py has {count} lines {line!r}, expected exactly 1")
    (package / "arch_utils.py").write_text(patched)
    (package / "sst_arch.py").write_text((checkout / "sst" / "archs" / "sst_arch.py").read_text())
    registry = workdir / "basicsr" / "utils"
    if not registry.is_dir():
        registry.mkdir(parents=True)
        (workdir / "basicsr" / "__init__.py").write_text("")
        (registry / "__init__.py").write_text("")
        (registry / "registry.py").write_text(
            "class _Registry:\n    def register(self):\n        return lambda cls: cls\n\nARCH_REGISTRY = _Registry()\n"
        )
    if str(workdir) not in sys.path:
        sys.path.insert(0, str(workdir))
    return importlib.import_module(f"{package.name}.sst_arch")


def perturb(model: torch.nn.Module, seed: int) -> None:
    """Move every parameter off its initial value; order-one RIB and FlashBias factors (FlashBias starts at
    zero) and RPB tables, so position matters."""
    generator = torch.Generator().manual_seed(seed)
    order_one = ("to_q", "to_k", "flashbias_q", "flashbias_k", "relative_position_bias")
    with torch.no_grad():
        for name, param in model.named_parameters():
            std = 0.5 if name.endswith(order_one) else 0.05
            param.add_(torch.randn(param.shape, generator=generator) * std)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of github.com/dslisleedh/SST")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "tests/fixtures/official")
    args = parser.parse_args()
    found = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    if found.returncode != 0 or not (args.checkout / "sst" / "archs" / "sst_arch.py").is_file():
        raise SystemExit(f"{args.checkout}: not a git checkout of dslisleedh/SST (need sst/archs/sst_arch.py)")
    commit = found.stdout.strip()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "official_repository": "https://github.com/dslisleedh/SST",
        "official_commit": commit,
        "torch": torch.__version__,
        "attention": "official code with q, k, v cast to float32",
        "fixtures": {},
    }
    with tempfile.TemporaryDirectory() as workdir:
        modules = {
            patch: official_module(args.checkout, Path(workdir), patch)
            for patch in [None, *dict.fromkeys(FIXTURE_PATCHES.values())]
        }
        for index, (name, (kwargs, ours, (height, width))) in enumerate(FIXTURES.items()):
            patch = FIXTURE_PATCHES.get(name)
            torch.manual_seed(index)
            model = modules[patch].SST(**kwargs)
            forms = [module.rope_mixed for module in model.modules() if hasattr(module, "rope_mixed")]
            if patch == "rope_mixed=False" and (not forms or any(forms)):
                raise SystemExit(f"{name}: the rope_mixed=False patch did not reach WindowAttention2D")
            perturb(model, seed=100 + index)
            model.eval()
            x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(200 + index))
            with torch.no_grad():
                y = model(x)
            state = {key: value.clone() for key, value in model.state_dict().items()}
            decoy = {key: value + 1 for key, value in state.items()}  # `params`: must not be the one loaded
            torch.save({"params_ema": state, "params": decoy}, args.out / f"{name}.pth")
            torch.save({"input": x, "output": y}, args.out / f"{name}.io.pt")
            manifest["fixtures"][name] = {
                "checkpoint": f"{name}.pth",
                "io": f"{name}.io.pt",
                "suite": ours,
                "input_hw": [height, width],
                "official_kwargs": kwargs,
                "official_patch": patch,
            }
            print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, output {tuple(y.shape)}")
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
