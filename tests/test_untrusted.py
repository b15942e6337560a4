"""Files from other people: paths stay inside the corpus, ids are sanitised, weights are
hash-checked and never unpickled."""

import pickle

import pytest
import torch

from pipeline.corpora import Clip, safe_clip_id
from pipeline.hashing import file_sha256
from pipeline.manifest import ManifestEntry
from pipeline.weights import WeightsError, load_state_dict, resolve_weights


def test_manifest_paths_cannot_escape_the_corpus_root(tmp_path):
    (tmp_path / "corpus").mkdir()
    e = ManifestEntry("x", "../outside.mp4")
    with pytest.raises(ValueError, match="points outside"):
        e.media_path(tmp_path / "corpus")
    link = tmp_path / "corpus" / "link.mp4"
    link.symlink_to(tmp_path / "secret.mp4")
    with pytest.raises(ValueError, match="points outside"):
        ManifestEntry("y", "link.mp4").media_path(tmp_path / "corpus")
    with pytest.raises(ValueError, match="relative to the corpus root"):
        Clip("z", "/etc/passwd")


@pytest.mark.parametrize("raw, want", [
    ("Ses01F_impro01_F000", "Ses01F_impro01_F000"),
    ("../../etc/passwd", "etc_passwd"),
    ("a/b c", "a_b_c"),
    ("émotion clip #1", "emotion_clip_1"),
    ("日本語", "clip_" + __import__("hashlib").sha1("日本語".encode()).hexdigest()[:12]),
    ("/clips/x", "clips_x"),
])
def test_clip_ids_are_sanitised(raw, want):
    assert safe_clip_id(raw) == want
    with pytest.raises(ValueError, match="not safe"):
        Clip(raw if raw != want else raw + "/", "a.mp4")


def test_weights_missing_mismatch_and_pickle(tmp_path):
    with pytest.raises(WeightsError, match=r"FAN weights not found: .*nope.pth.*set "
                                           r"landmarks.fan_weights.*Get it from"):
        resolve_weights(tmp_path / "nope.pth", what="FAN", param="landmarks.fan_weights",
                        how_to_get="Get it from the face-alignment release page.")
    good = tmp_path / "w.pth"
    torch.save({"w": torch.ones(2)}, good)
    sha = file_sha256(good)
    assert resolve_weights(good, sha, what="x", param="p", how_to_get="") == good
    with pytest.raises(WeightsError, match="sha256 .* but params.yaml records 00"):
        resolve_weights(good, "00" * 32, what="x", param="p", how_to_get="")
    assert torch.equal(load_state_dict(good)["w"], torch.ones(2))

    class Evil:
        def __reduce__(self):
            return (print, ("this ran",))

    bad = tmp_path / "evil.pth"
    torch.save({"w": Evil()}, bad, pickle_module=pickle)
    with pytest.raises(WeightsError, match="not a loadable tensor state dict"):
        load_state_dict(bad)
