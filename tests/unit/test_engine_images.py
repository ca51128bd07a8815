"""Image references the kubelet can pull, and the ones it leaves in InvalidImageName."""

from __future__ import annotations

import pytest

from runs_controller.engine.images import MAX_NAME_LENGTH, image_reference_problem

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.25",
        "example/echo:1",
        "docker.io/library/nginx:latest",
        "ghcr.io/bubustack/bobrapet:v0.1.0",
        "localhost:5000/team/app",
        "Registry.Example.com:443/team/app:1.0-rc_1",
        "[::1]:5000/x:TAG",
        f"nginx@{DIGEST}",
        f"nginx:1.25@{DIGEST}",
        "a__b/c.d/e-----f",
        "x:" + "t" * 128,
    ],
)
def test_pullable_references_pass(image: str) -> None:
    assert image_reference_problem(image) is None


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        (" spaced image ", "leading or trailing whitespace"),
        ("UPPER CASE", "not a valid image reference"),
        ("example/Echo:1", "repository names must be lowercase"),
        ("a:", "not a valid"),
        (":tag", "not a valid"),
        ("a//b", "not a valid"),
        ("a/-b", "not a valid"),
        ("a/b-", "not a valid"),
        ("a___b", "not a valid"),
        ("x:" + "t" * 129, "not a valid"),
        ("x:.tag", "not a valid"),
        ("nginx@sha256:abc", "not a valid"),
        ("nginx@" + DIGEST.replace("sha256", "256"), "not a valid"),
        ("a b", "not a valid"),
        ("é", "not a valid"),
    ],
)
def test_what_the_kubelet_cannot_parse_is_named(image: str, problem: str) -> None:
    found = image_reference_problem(image)
    assert found is not None and problem in found


def test_the_repository_name_is_at_most_255_characters() -> None:
    at_limit = "a" * MAX_NAME_LENGTH
    assert image_reference_problem(at_limit + ":1") is None
    found = image_reference_problem(at_limit + "a:1")
    assert found is not None and "longer than 255" in found
