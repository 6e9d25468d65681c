"""The Python API checks its arguments when a Simulation is made, with the command line's messages."""

from __future__ import annotations

import pytest
import torch

from nbsim import PluginError, Simulation, UsageError
from nbsim.engines.budget import parse_size

ARGV = "-cell 100 100 100 90 90 90 -default_F 100 -N 5 -detpixels 16 -lambda 1 -distance 100".split()


@pytest.mark.parametrize("value, expected", [("1G", 1 << 30), ("512M", 512 << 20), (4096, 4096), ("2gib", 2 << 30)])
def test_max_memory_accepts_sizes_like_the_command_line(value, expected):
    assert Simulation.from_argv(ARGV, max_memory=value).max_memory == expected


@pytest.mark.parametrize("value, words", [
    ("lots", "max_memory: expected a size such as 4G, 512M or 1000000, got 'lots'"),
    (0, "max_memory: must be positive, got 0"),
    (1.5, "max_memory: expected a size such as 4G, 512M or 1000000, got 1.5"),
])
def test_bad_max_memory_is_a_usage_error_naming_the_keyword(value, words):
    with pytest.raises(UsageError) as info:
        Simulation.from_argv(ARGV, max_memory=value)
    assert str(info.value) == words


def test_same_words_as_the_command_line():
    with pytest.raises(UsageError) as api:
        Simulation.from_argv(ARGV, max_memory="lots")
    with pytest.raises(UsageError) as cli:
        parse_size("lots", "--max-memory")
    assert str(api.value).replace("max_memory", "--max-memory") == str(cli.value)


@pytest.mark.parametrize("kwargs, words", [
    ({"device": "gpu0"}, "device: unknown device 'gpu0'"),
    ({"device": "meta"}, "device meta: nbsim runs on cpu and cuda devices"),
    ({"dtype": torch.float16}, "dtype: expected float64 or float32, got torch.float16"),
    ({"dtype": "double"}, "dtype: expected float64 or float32, got 'double'"),
    ({"phi_policy": "nope"}, "nope"),
])
def test_bad_arguments_fail_at_construction(kwargs, words):
    with pytest.raises((UsageError, PluginError)) as info:
        Simulation.from_argv(ARGV, **kwargs)
    assert words in str(info.value)


def test_dtype_by_name_and_device_object():
    sim = Simulation.from_argv(ARGV, dtype="float32", device=torch.device("cpu"))
    assert sim.dtype is torch.float32 and sim.image().dtype is torch.float32


def test_config_must_be_a_run_config():
    with pytest.raises(UsageError, match="config: expected a RunConfig"):
        Simulation(ARGV)
