"""Every knob of the synthetic STARSS23-format scene generator, in one validated dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

_X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max <= {high}; got {value}")


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]; got {value}")


@dataclass(frozen=True)
class SyntheticConfig:
    """How synthetic STARSS23-format recordings are made.

    Args:
        duration: seconds per recording (>= 6).
        video_width: equirectangular video width in pixels (even, ``2 * video_height``).
        video_height: equirectangular video height in pixels (even, >= 32).
        fps: video frame rate in frames per second (the release: ``Fraction(30000, 1001)``).
        sample_rate: FOA sample rate in Hz (the release: 24000).
        camera_height: height of the 360° camera and the microphone above the floor, metres.
        people: (min, max) number of people in a room (at most 4: more cannot keep apart in every room).
        musician_probability: probability that a person plays an instrument (class 9) instead of talking.
        walking_probability: probability that a person walks slowly (along azimuth and distance) instead of
            standing still.
        grouped_probability: probability that the people of a room stand in one group (centres within
            110° of azimuth, so that consecutive turns often fit one 100° view) rather than anywhere around
            the camera.
        offscreen_probability: probability that a room has a ceiling loudspeaker (elevation 45-70°, never
            inside a horizontal view's vertical field) that also plays speech turns: an off-screen target.
        turn_seconds: (min, max) length of one speaker's or player's turn, seconds.
        gap_seconds: (min, max) silence between turns, seconds (short gaps).
        long_gap_probability: probability that a gap is long (0.5-2 s) instead.
        overlap_probability: probability that the next turn overlaps the current one (two active target
            sources).
        far_turn_weight: relative chance that the next turn goes to a source more than 90° of azimuth away
            from the last one (1 = talkers chosen uniformly; below 1 = conversations stay within a view
            more often).
        nontarget_probability: probability that a turn slot is a non-target event (knock, footsteps,
            phone ...).
        nontarget_overlay_probability: probability that a non-target event is added on top of a target turn.
        source_peak_dbfs: (min, max) peak level of a source's dry signal at 1 m distance, dBFS. STARSS23 FOA
            is quiet (hence the +38 dB of the SVGSA24 conversion); the default puts most target events at
            stereo peaks of 0.2-0.9 after that gain.
        loud_event_probability: probability that an event is played louder (so that some SVGSA24 windows
            clip).
        loud_event_gain_db: (min, max) extra gain of a loud event, dB.
        rt60_seconds: (min, max) reverberation time of a room, seconds.
        direct_to_reverb_db: (min, max) ratio of the direct sound at 1 m to the diffuse tail, dB.
        noise_floor_dbfs: RMS of the diffuse background noise in the W channel, dBFS.
        audio_subtype: soundfile subtype of the FOA WAV: ``"FLOAT"`` (32-bit float) or ``"PCM_24"``.
        video_crf: x264 constant rate factor of the 360° video.
        video_preset: x264 speed preset.
    """

    duration: float = 30.0
    video_width: int = 960
    video_height: int = 480
    fps: float | Fraction = Fraction(30000, 1001)
    sample_rate: int = 24000
    camera_height: float = 1.5
    people: tuple[int, int] = (1, 4)
    musician_probability: float = 0.35
    walking_probability: float = 0.4
    grouped_probability: float = 0.6
    offscreen_probability: float = 0.5
    turn_seconds: tuple[float, float] = (2.0, 8.0)
    gap_seconds: tuple[float, float] = (0.05, 0.45)
    long_gap_probability: float = 0.1
    overlap_probability: float = 0.07
    far_turn_weight: float = 0.35
    nontarget_probability: float = 0.07
    nontarget_overlay_probability: float = 0.04
    source_peak_dbfs: tuple[float, float] = (-48.0, -40.0)
    loud_event_probability: float = 0.07
    loud_event_gain_db: tuple[float, float] = (8.0, 14.0)
    rt60_seconds: tuple[float, float] = (0.3, 0.8)
    direct_to_reverb_db: tuple[float, float] = (6.0, 12.0)
    noise_floor_dbfs: float = -84.0
    audio_subtype: str = "FLOAT"
    video_crf: int = 23
    video_preset: str = "veryfast"

    def __post_init__(self) -> None:
        if not (
            isinstance(self.duration, (int, float)) and math.isfinite(self.duration) and self.duration >= 6.0
        ):
            raise ValueError(f"duration must be at least 6 seconds; got {self.duration}")
        if self.video_height < 32 or self.video_height % 2:
            raise ValueError(f"video_height must be even and >= 32; got {self.video_height}")
        if self.video_width != 2 * self.video_height:
            raise ValueError(
                f"equirectangular video must be 2:1; got video_width={self.video_width}, "
                f"video_height={self.video_height}"
            )
        fps = Fraction(self.fps) if isinstance(self.fps, Fraction) else self.fps
        if not (
            isinstance(fps, (int, float, Fraction)) and 0 < float(fps) <= 240 and math.isfinite(float(fps))
        ):
            raise ValueError(f"fps must be in (0, 240]; got {self.fps}")
        if not 8000 <= self.sample_rate <= 192_000:
            raise ValueError(f"sample_rate must be in [8000, 192000] Hz; got {self.sample_rate}")
        if not 0.5 <= self.camera_height <= 2.5:
            raise ValueError(f"camera_height must be in [0.5, 2.5] m; got {self.camera_height}")
        if len(self.people) != 2 or not 1 <= self.people[0] <= self.people[1] <= 4:
            raise ValueError(f"people must be (min, max) with 1 <= min <= max <= 4; got {self.people}")
        for name in (
            "musician_probability",
            "walking_probability",
            "grouped_probability",
            "offscreen_probability",
            "long_gap_probability",
            "overlap_probability",
            "nontarget_probability",
            "nontarget_overlay_probability",
            "loud_event_probability",
            "far_turn_weight",
        ):
            _check_probability(name, getattr(self, name))
        if self.nontarget_probability >= 1.0:
            raise ValueError(
                f"nontarget_probability must be below 1 (no target turn would remain); "
                f"got {self.nontarget_probability}"
            )
        _check_range("turn_seconds", self.turn_seconds, 0.5, 60.0)
        _check_range("gap_seconds", self.gap_seconds, 0.0, 10.0)
        _check_range("source_peak_dbfs", self.source_peak_dbfs, -120.0, 0.0)
        _check_range("loud_event_gain_db", self.loud_event_gain_db, 0.0, 40.0)
        _check_range("rt60_seconds", self.rt60_seconds, 0.1, 3.0)
        _check_range("direct_to_reverb_db", self.direct_to_reverb_db, -20.0, 40.0)
        if not -160.0 <= self.noise_floor_dbfs <= -20.0:
            raise ValueError(f"noise_floor_dbfs must be in [-160, -20] dBFS; got {self.noise_floor_dbfs}")
        if self.audio_subtype not in ("FLOAT", "PCM_24"):
            raise ValueError(f"audio_subtype must be 'FLOAT' or 'PCM_24'; got {self.audio_subtype!r}")
        if not 0 <= self.video_crf <= 51:
            raise ValueError(f"video_crf must be in [0, 51]; got {self.video_crf}")
        if self.video_preset not in _X264_PRESETS:
            raise ValueError(f"video_preset must be one of {_X264_PRESETS}; got {self.video_preset!r}")

    @property
    def frame_rate(self) -> Fraction:
        """The video frame rate as an exact fraction."""
        if isinstance(self.fps, Fraction):
            return self.fps
        return Fraction(self.fps).limit_denominator(1001)

    @property
    def num_video_frames(self) -> int:
        """Frames in a recording's video: enough to cover ``duration`` (``ceil(duration * fps)``)."""
        return int(math.ceil(Fraction(self.duration) * self.frame_rate - Fraction(1, 10**9)))

    @property
    def num_samples(self) -> int:
        """FOA samples in a recording."""
        return int(round(self.duration * self.sample_rate))

    @property
    def num_metadata_frames(self) -> int:
        """100-ms metadata frames in a recording."""
        return int(math.floor(self.duration * 10 + 1e-9))
