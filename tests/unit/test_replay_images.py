"""Images stored once in the replay: a sampled mix is exactly what was added, in less memory.

A next image is read from the following row unless an episode ended there (the env already
reset) or the segment ended; those are kept apart. Every test compares against a replay that
stores next_obs images in full.
"""
import io

import pytest
import torch

from rldt_train.rl.replay import RolloutReplay

STEPS, ENVS, SIZE = 6, 3, 8


def rollout(seed: int, ends: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """One segment of a contiguous rollout per env; episodes end at the (t, env) in ends.

    Each frame is unique, so a next image taken from the wrong row is caught.
    """
    gen = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (STEPS + 1, ENVS, SIZE, SIZE, 3), generator=gen,
                           dtype=torch.uint8)
    finals = torch.randint(0, 256, (STEPS, ENVS, SIZE, SIZE, 3), generator=gen,
                           dtype=torch.uint8)
    state = torch.randn(STEPS + 1, ENVS, 2, generator=gen)
    end = torch.zeros(STEPS, ENVS, dtype=torch.bool)
    for t, env in ends:
        end[t, env] = True
    # Where an episode ended, the true next observation is the episode's final one; the next
    # row starts the new episode.
    next_frames = torch.where(end[..., None, None, None], finals, frames[1:])
    return {'obs/front': frames[:-1], 'next_obs/front': next_frames,
            'obs/state': state[:-1], 'next_obs/state': state[1:],
            'chunk': torch.randn(STEPS, ENVS, 1, 1, generator=gen),
            'reward': torch.randn(STEPS, ENVS, generator=gen), 'terminated': end.clone(),
            'episode_end': end, 'success': end.clone()}


SEGMENTS = [rollout(0, [(1, 0), (4, 2)]), rollout(1, []), rollout(2, [(5, 1), (0, 1)])]


def filled(image_keys: tuple[str, ...], capacity: int = 2) -> RolloutReplay:
    replay = RolloutReplay(capacity, torch.device('cpu'), image_keys=image_keys)
    for segment in SEGMENTS:                             # 3 segments in 2 slots: the ring wraps
        replay.add(segment)
    return replay


def sample(replay: RolloutReplay, seed: int, balance: bool = False) -> dict:
    return replay.sample_trajectories(4, 0.5, balance, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('balance', [False, True])
def test_sampled_next_images_equal_what_was_added(balance):
    full, once = filled(()), filled(('front',))
    for seed in range(5):
        expected, got = sample(full, seed, balance), sample(once, seed, balance)
        assert set(got) == set(expected)
        for name in expected:
            assert torch.equal(got[name], expected[name]), name


def test_images_take_about_half_the_memory():
    full, once = filled(()), filled(('front',))
    frame = SIZE * SIZE * 3
    # Stored apart per slot: the last row (3 envs) plus the episode ends before it.
    kept = sum(len(slot['front']) for slot in once.next_images)
    assert kept == (ENVS + 0) + (ENVS + 1)               # slots hold segments 2 and 1
    assert full.nbytes - once.nbytes == (2 * STEPS * ENVS - kept) * frame \
        - 2 * STEPS * ENVS * 8                           # minus the (T, E) int64 index


def test_a_segment_that_is_not_one_rollout_is_refused():
    segment = dict(SEGMENTS[1])
    segment['next_obs/front'] = segment['next_obs/front'].clone()
    segment['next_obs/front'][2, 1] += 1
    replay = RolloutReplay(2, torch.device('cpu'), image_keys=('front',))
    with pytest.raises(ValueError, match='next_obs/front differs'):
        replay.add(segment)
    assert replay.count == 0
    with pytest.raises(ValueError, match='lacks obs/wrist'):
        RolloutReplay(2, torch.device('cpu'), image_keys=('wrist',)).add(SEGMENTS[0])


def test_state_round_trips_through_a_weights_only_checkpoint():
    once = filled(('front',))
    buffer = io.BytesIO()
    torch.save(once.state_dict(), buffer)
    buffer.seek(0)
    restored = RolloutReplay(2, torch.device('cpu'), image_keys=('front',))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for seed in range(3):
        expected, got = sample(once, seed), sample(restored, seed)
        for name in expected:
            assert torch.equal(got[name], expected[name]), name
