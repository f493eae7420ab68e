"""Decoding, joint mapping and staleness of rldt_ros.observation (no ROS needed)."""
import numpy as np
import pytest

from rldt_ros.observation import JointStateMapper
from rldt_ros.observation import LatestCache
from rldt_ros.observation import ObservationError
from rldt_ros.observation import decode_image
from rldt_ros.observation import episode_end_stamp_ns
from rldt_ros.observation import to_model_rgb


def _rgb(h=4, w=5):
    return np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)


def test_rgb8_with_row_padding_decodes_exactly():
    img = _rgb()
    step = 5 * 3 + 7
    rows = np.zeros((4, step), dtype=np.uint8)
    rows[:, :15] = img.reshape(4, 15)
    out = decode_image('rgb8', 4, 5, step, False, rows.tobytes())
    np.testing.assert_array_equal(out, img)


def test_bgr8_becomes_rgb():
    img = _rgb()
    bgr = img[:, :, ::-1].copy()
    out = to_model_rgb(decode_image('bgr8', 4, 5, 15, False, bgr.tobytes()), 'bgr8', 4, 5)
    np.testing.assert_array_equal(out, img)


def test_mono8_is_repeated_to_three_channels():
    mono = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = to_model_rgb(decode_image('mono8', 4, 5, 5, False, mono.tobytes()), 'mono8', 4, 5)
    assert out.shape == (4, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], mono)


@pytest.mark.parametrize('bigendian', [False, True])
def test_16uc1_respects_byte_order_and_scales_to_uint8(bigendian):
    depth = np.array([[0, 257, 65535, 1000]], dtype=np.uint16)
    data = depth.astype('>u2' if bigendian else '<u2').tobytes()
    raw = decode_image('16UC1', 1, 4, 8, bigendian, data)
    np.testing.assert_array_equal(raw[:, :, 0], depth)
    out = to_model_rgb(raw, '16UC1', 1, 4)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 3])


def test_wrong_size_is_resized_to_the_model_size():
    img = np.full((40, 60, 3), 200, dtype=np.uint8)
    out = to_model_rgb(img, 'rgb8', 8, 12)
    assert out.shape == (8, 12, 3) and out.dtype == np.uint8
    assert np.all(out == 200)


@pytest.mark.parametrize('encoding', ['yuv422', 'bayer_rggb8', '32FC1', 'RGB8'])
def test_unknown_encoding_is_a_clear_error(encoding):
    with pytest.raises(ObservationError, match=encoding):
        decode_image(encoding, 2, 2, 6, False, bytes(12))


def test_short_data_and_small_step_are_errors():
    with pytest.raises(ObservationError, match='bytes'):
        decode_image('rgb8', 4, 5, 15, False, bytes(59))
    with pytest.raises(ObservationError, match='step'):
        decode_image('rgb8', 4, 5, 14, False, bytes(100))


def test_joints_are_picked_by_name_in_any_order_with_extras():
    mapper = JointStateMapper(['a', 'b'], ['position', 'velocity'])
    state = mapper.state(['x', 'b', 'a'], [9.0, 2.0, 1.0], [90.0, 20.0, 10.0])
    np.testing.assert_array_equal(state, [1.0, 2.0, 10.0, 20.0])
    # A different order on the next message must not reuse the cached index.
    state = mapper.state(['a', 'b'], [3.0, 4.0], [5.0, 6.0])
    np.testing.assert_array_equal(state, [3.0, 4.0, 5.0, 6.0])


def test_missing_joint_names_the_joint():
    mapper = JointStateMapper(['a', 'wrist'], ['position'])
    with pytest.raises(ObservationError, match='wrist'):
        mapper.state(['a'], [1.0], [])


def test_missing_velocity_array_is_an_error():
    mapper = JointStateMapper(['a'], ['position', 'velocity'])
    with pytest.raises(ObservationError, match='velocity'):
        mapper.state(['a'], [1.0], [])


def test_nan_is_rejected_with_the_joint_name():
    mapper = JointStateMapper(['a', 'b'], ['position', 'velocity'])
    with pytest.raises(ObservationError, match=r"non-finite.*\['b'\]"):
        mapper.state(['a', 'b'], [1.0, 2.0], [0.0, float('nan')])


def test_cache_snapshot_is_all_fresh_or_nothing():
    now = [0.0]
    cache = LatestCache(['state', 'front'], clock=lambda: now[0])
    cache.put('state', 1)
    assert cache.snapshot(0.1) is None
    now[0] = 0.05
    cache.put('front', 2)
    assert cache.snapshot(0.1) == {'state': 1, 'front': 2}
    now[0] = 0.12
    assert cache.snapshot(0.1) is None
    ages = cache.ages_s()
    assert ages['state'] == pytest.approx(0.12) and ages['front'] == pytest.approx(0.07)


def test_values_stamped_after_an_episode_end_count_as_arrived_at_its_news():
    now = [1.0]
    cache = LatestCache(['state', 'front'], clock=lambda: now[0])
    cache.put('state', 1, stamp_ns=100)  # the old episode's last state
    cache.put('front', 2, stamp_ns=200)  # the new episode's first image, before the news
    now[0] = 2.0
    assert cache.renew_stamped_after(100, 2.5) == ['front']  # the state is not newer
    assert not cache.arrived_since(2.0)  # the new state is still to come
    now[0] = 3.0
    cache.put('state', 3, stamp_ns=200)
    assert cache.arrived_since(2.0)  # a whole observation of the new episode
    cache.put('state', 4)  # unstamped: never counts as after a stamp
    assert cache.renew_stamped_after(0, 9.0) == ['front']


@pytest.mark.parametrize('report, expected', [
    ('{"end_stamp_ns": 1234}', 1234), ('{}', None), ('{"end_stamp_ns": -5}', None),
    ('{"end_stamp_ns": 1.5}', None), ('{"end_stamp_ns": true}', None), ('[1]', None),
    ('not json', None), ('', None), ('[' * 100000, None)])
def test_episode_end_stamp_is_read_from_the_report_or_none(report, expected):
    assert episode_end_stamp_ns(report) == expected
