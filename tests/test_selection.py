"""The official FVD/KVD/FAD window selection (reference §6.2)."""

from __future__ import annotations

import numpy as np
import pytest

from savg_hub.evaluation.selection import (
    VideoTiming,
    WindowIndex,
    first_decodable,
    list_videos_official,
    official_selection,
    official_shuffles,
    resampled_frame_indices,
    video_windows,
    window_audio,
)

CLIP0 = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 7, 7]  # reference §6.2, window 0 of a 4-fps clip


def _clips(n: int, prefix: str = "c") -> list[VideoTiming]:
    return [VideoTiming(f"{prefix}{i:03d}.mp4", 20, 4.0) for i in range(n)]


def test_a_20_frame_4_fps_clip_has_31_windows_of_duplicated_frames():
    resampled = resampled_frame_indices(20, 4.0)
    assert resampled.tolist() == [int(np.floor(0.4 * i + 1e-9)) for i in range(50)]
    windows = video_windows(20, 4.0)
    assert windows.shape == (31, 20)
    assert windows[0].tolist() == CLIP0
    assert windows[30].tolist() == resampled[30:50].tolist()
    assert video_windows(7, 4.0).shape == (0, 20)  # 1.75 s: 17 resampled frames, no window
    # an integer step is a plain stride: 20 fps -> 10 fps keeps every other frame
    assert resampled_frame_indices(40, 20.0).tolist() == list(range(0, 40, 2))


def test_official_order_for_96_generated_and_10_reference_clips():
    fake, real = official_selection(_clips(96, "dpm"), _clips(10, "ref"))
    assert len(fake) == 96 and len(real) == 96
    # random.seed(42); shuffle(range(2976)); then shuffle(range(310)) on the same stream
    assert [w.global_index for w in fake[:8]] == [584, 287, 1163, 2036, 1543, 1053, 1146, 1137]
    assert [w.global_index for w in real[:8]] == [190, 113, 32, 155, 265, 189, 130, 89]
    first = fake[0]
    assert (first.video_index, first.window_index, first.path) == (18, 26, "dpm018.mp4")
    assert first.source_frames[0] == 10 and first.source_frames[-1] == 18
    assert (first.audio_start, first.audio_end, first.audio_start_sample) == (2.5, 4.75, 110_250)
    assert real[0].path == "ref006.mp4" and real[0].window_index == 4


def test_small_sets_give_fewer_windows_and_shuffles_are_a_permutation():
    fake, real = official_selection(_clips(2), _clips(1))
    assert len(fake) == 62 and len(real) == 31
    assert sorted(w.global_index for w in fake) == list(range(62))
    a, b = official_shuffles(62, 31)
    assert [w.global_index for w in fake] == a and [w.global_index for w in real] == b
    with pytest.raises(ValueError, match="no window"):
        official_selection(_clips(2), [VideoTiming("short.mp4", 4, 4.0)])


def test_window_numbering_across_videos_of_different_lengths():
    index = WindowIndex([VideoTiming("a", 20, 4.0), VideoTiming("b", 40, 4.0), VideoTiming("c", 8, 4.0)])
    assert len(index) == 31 + 81 + 1
    assert index.window(31).path == "b" and index.window(31).window_index == 0
    assert index.window(112).path == "c" and index.window(112).source_frames.tolist() == CLIP0
    with pytest.raises(ValueError, match="out of range"):
        index.window(113)


def test_decode_failure_falls_back_to_the_next_index():
    assert first_decodable(5, 10, lambda i: i not in (5, 6)) == 7
    assert first_decodable(9, 10, lambda i: i == 0) == 0
    with pytest.raises(ValueError, match="none of the 10"):
        first_decodable(3, 10, lambda i: False)


def test_window_audio_cut_and_padding():
    audio = np.tile(np.arange(5 * 44_100, dtype=np.float64), (2, 1))
    audio[1] *= -1
    window = WindowIndex(_clips(1)).window(26)  # starts at 2.5 s, ends at 4.75 s
    cut = window_audio(audio, window)
    assert cut.shape == (2, 80_000) and cut.dtype == np.float64
    assert cut[0, 0] == 110_250 and cut[0, -1] == 110_250 + 79_999 and cut[1, 0] == -110_250
    short = window_audio(audio[:, :150_000], window)  # the file ends 39 750 samples into the window
    assert np.all(short[:, 39_750:] == 0) and short[0, 39_749] == 149_999
    with pytest.raises(ValueError, match="stereo"):
        window_audio(audio[0], window)


def test_official_listing_order(tmp_path):
    for name in ("b.mp4", "a.MP4", "z.wav", "c.avi", "sub/x.gif", "sub/a.mp4", "noext"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    names = [p.relative_to(tmp_path).as_posix() for p in list_videos_official(tmp_path)]
    assert names == ["a.MP4", "b.mp4", "c.avi", "sub/a.mp4", "sub/x.gif"]
    with pytest.raises(ValueError, match="does not exist"):
        list_videos_official(tmp_path / "missing")
