"""Turns ROS sensor messages into the arrays a model card asks for, without importing ROS.

The node hands plain fields (names, positions, encoding, bytes) to these functions, so decoding,
joint mapping and staleness are tested by pytest alone. Every failure raises `ObservationError`
with a message naming the joint, encoding or size at fault: the node shows it on /diagnostics.
"""
import json
import threading
import time

import cv2
import numpy as np

# Encodings decoded here: (channels, dtype). Others (bayer, yuv, float) are refused by name rather
# than guessed, because a wrong guess still produces an image and the policy would act on garbage.
FLOAT32_MAX = float(np.finfo(np.float32).max)

ENCODINGS = {
    'rgb8': (3, np.uint8),
    'bgr8': (3, np.uint8),
    'mono8': (1, np.uint8),
    '16UC1': (1, np.uint16),
}


class ObservationError(ValueError):
    """An observation cannot be built; the message says which field and value are wrong."""


def check_encoding(encoding: str) -> None:
    """Raises ObservationError for an encoding this module cannot decode."""
    if encoding not in ENCODINGS:
        raise ObservationError(
            f'unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}')


def check_image_size(height: int, width: int, max_pixels: int) -> None:
    """Raises ObservationError for an image larger than `max_pixels`, from its header alone.

    Decoding and resizing cost grows with the pixels (measured on 2 cores, 1 thread: 1 ms at
    640x480, 6 ms at 1920x1080, 124 ms at 8192x8192) and runs on the control loop's thread, so
    a larger image is refused before any of it is touched.
    """
    if height * width > max_pixels:
        raise ObservationError(
            f'image of {width}x{height} = {height * width} pixels exceeds max_image_pixels '
            f'{max_pixels}: refused before decoding (downscale it at the camera driver)')


def decode_image(encoding: str, height: int, width: int, step: int, is_bigendian: bool,
                 data: bytes) -> np.ndarray:
    """Decodes sensor_msgs/Image fields to an (height, width, channels) array.

    `step` may exceed width * channels * itemsize (row padding), so rows are cut to the payload.
    Returns uint8 for 8-bit encodings and uint16 (native byte order) for 16UC1.
    """
    check_encoding(encoding)
    channels, dtype = ENCODINGS[encoding]
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if height <= 0 or width <= 0:
        raise ObservationError(f'image has no pixels: {height}x{width}')
    if step < row_bytes:
        raise ObservationError(f'image step {step} < width*channels*itemsize = {row_bytes}')
    if len(data) < step * height:
        raise ObservationError(
            f'image data has {len(data)} bytes, expected step*height = {step * height}')
    rows = np.frombuffer(data, dtype=np.uint8, count=step * height).reshape(height, step)
    pixels = rows[:, :row_bytes]
    if dtype == np.uint16:
        order = '>' if is_bigendian else '<'
        pixels = np.ascontiguousarray(pixels).view(order + 'u2').astype(np.uint16)
    return pixels.reshape(height, width, channels)


def to_model_rgb(image: np.ndarray, encoding: str, height: int, width: int) -> np.ndarray:
    """Converts a decoded image to the model input: uint8 (height, width, 3) RGB.

    bgr8 swaps channels; mono8 is repeated to three channels; 16UC1 (depth, e.g. millimetres) is
    scaled by 255/65535 as cv_bridge does for mono16 -> mono8. A size different from the model's
    is resized (INTER_AREA, which averages when shrinking instead of aliasing).
    """
    check_encoding(encoding)
    if encoding == '16UC1':
        image = (image.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if encoding == 'bgr8':
        image = image[:, :, ::-1]
    elif image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.uint8)


class JointStateMapper:
    """Picks the model's joints by NAME from JointState messages (any order, extras ignored).

    Drivers publish joints in their own order and often more joints than the model uses, so
    positions are never taken by index. The index map is cached per name list: drivers keep the
    same list for every message, so the lookup costs one tuple compare per message.
    """

    def __init__(self, joints: list[str], fields: list[str]):
        unknown = sorted(set(fields) - {'position', 'velocity'})
        if unknown:
            raise ObservationError(f'unknown state fields {unknown}; use position, velocity')
        self.joints = list(joints)
        self.fields = list(fields)
        self._names: tuple[str, ...] | None = None
        self._index: np.ndarray | None = None

    def _indices(self, names: tuple[str, ...]) -> np.ndarray:
        if names != self._names:
            lookup = {name: i for i, name in enumerate(names)}
            if len(lookup) != len(names):
                # Which of two values is the joint? Guessing (last wins) would act on either.
                twice = sorted({n for n in names if names.count(n) > 1})
                raise ObservationError(f'joint_states names joint(s) {twice} more than once')
            missing = [j for j in self.joints if j not in lookup]
            if missing:
                raise ObservationError(f'joint_states lacks joint(s) {missing}')
            self._index = np.array([lookup[j] for j in self.joints], dtype=np.intp)
            self._names = names
        return self._index

    def state(self, names, positions, velocities) -> np.ndarray:
        """Returns float64 (len(fields) * len(joints),): all positions, then all velocities.

        Raises ObservationError on a missing or repeated joint, a short field array, or a value
        that is not finite or overflows float32, the model's input type (a NaN must never reach
        the policy: its output would be NaN too, or worse, finite junk).
        """
        index = self._indices(tuple(names))
        parts = []
        for field, values in (('position', positions), ('velocity', velocities)):
            if field not in self.fields:
                continue
            if len(values) != len(names):
                raise ObservationError(
                    f'joint_states has {len(values)} {field} values for {len(names)} names')
            parts.append(np.asarray(values, dtype=np.float64)[index])
        state = np.concatenate(parts)
        bad = ~np.isfinite(state) | (np.abs(state) > FLOAT32_MAX)
        if np.any(bad):
            joints = sorted({self.joints[i % len(self.joints)] for i in np.flatnonzero(bad)})
            raise ObservationError(f'non-finite joint_states for {joints} (or beyond float32)')
        return state

    def positions_velocities(self, names, positions, velocities):
        """(positions, velocities or None) of the joints, for the plausibility check and the
        measured anchor; velocities are None when the message has none."""
        index = self._indices(tuple(names))
        if len(positions) != len(names):
            raise ObservationError(
                f'joint_states has {len(positions)} position values for {len(names)} names')
        pos = np.asarray(positions, dtype=np.float64)[index]
        vel = np.asarray(velocities, dtype=np.float64)[index] \
            if len(velocities) == len(names) else None
        return pos, vel


class LatestCache:
    """Latest value per key with its monotonic receive time; safe across threads.

    Subscriptions write, the control timer and the inference worker read. By default receive
    time decides staleness: it is what this computer knows, on its own clock. `put(..., age_s=)`
    back-dates a value that was already that old when it arrived (stamp-based staleness); the
    arrival time itself is kept apart, because event-driven inference asks what arrived when.
    """

    def __init__(self, keys: list[str], clock=time.monotonic):
        self.keys = list(keys)
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, object] = {}
        self._received: dict[str, float] = {}
        self._arrived: dict[str, float] = {}
        self._stamps: dict[str, int] = {}

    def put(self, key: str, value, age_s: float = 0.0, stamp_ns: int = 0) -> None:
        """stamp_ns: the message's header stamp (0: unstamped), on its source's clock."""
        with self._lock:
            now = self._clock()
            self._values[key] = value
            self._received[key] = now - max(0.0, age_s)
            self._arrived[key] = now
            self._stamps[key] = stamp_ns

    def ages_s(self) -> dict[str, float]:
        """Seconds since each key was last received (inf if never)."""
        now = self._clock()
        with self._lock:
            return {k: now - self._received[k] if k in self._received else float('inf')
                    for k in self.keys}

    def arrived_since(self, since_s: float) -> bool:
        """Whether every key has a value that arrived after `since_s` (this clock): a whole new
        observation, none of it already used before that time."""
        with self._lock:
            return all(self._arrived.get(k, -np.inf) > since_s for k in self.keys)

    def stamp_ns(self, key: str) -> int:
        """The header stamp of `key`'s latest value (0: none yet, or unstamped)."""
        with self._lock:
            return self._stamps.get(key, 0)

    def renew_stamped_after(self, stamp_ns: int, arrived_s: float) -> list[str]:
        """Counts every value whose header stamp is after `stamp_ns` (its source's clock) as
        arrived at `arrived_s` (this clock): it belongs to what started after that stamp, even
        if it came before the news of the start. Returns the keys renewed."""
        with self._lock:
            renewed = [k for k in self.keys if self._stamps.get(k, 0) > stamp_ns]
            for key in renewed:
                self._arrived[key] = max(self._arrived[key], arrived_s)
            return renewed

    def snapshot(self, max_age_s: float) -> dict | None:
        """All values if every key is fresher than max_age_s, else None (never a partial set)."""
        now = self._clock()
        with self._lock:
            if any(now - self._received.get(k, -np.inf) > max_age_s for k in self.keys):
                return None
            return {k: self._values[k] for k in self.keys}


STALENESS_CLOCKS = ('receive', 'stamp')


def episode_end_stamp_ns(report: str) -> int | None:
    """The header stamp of an episode's last observation, from a simulator's JSON episode
    report ('end_stamp_ns'), or None where the report has none (another simulator) or is not
    JSON: the caller then falls back to receive time."""
    try:
        value = json.loads(report).get('end_stamp_ns')
    except (ValueError, AttributeError, RecursionError):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def stamp_age_s(stamp_ns: int, now_ns: int, tolerance_s: float) -> float:
    """Age of a message from its header stamp on the node's clock (stamp-based staleness).

    A zero stamp means unstamped: age 0 (receive time decides). A stamp up to `tolerance_s` in
    the future is clock skew between computers and counts as fresh; further ahead it is a wrong
    clock, and data from a wrong clock cannot be judged: ObservationError.
    """
    if stamp_ns == 0:
        return 0.0
    age_s = (now_ns - stamp_ns) * 1e-9
    if age_s < -tolerance_s:
        raise ObservationError(f'header stamp {-age_s:.3f} s in the future (more than '
                               f'stamp_tolerance_s {tolerance_s}): clocks not synchronized?')
    return max(0.0, age_s)
