"""Domain randomization of the built-in tasks: nominal means untouched, perturbations are
reproducible from the episode seed, stay in their ranges and never accumulate (robot side:
no torch)."""
import numpy as np
import pytest

from rldt_ros.randomization import Randomization  # first: rldt_ros picks mujoco's GL backend
from rldt_ros.tasks import make_task
from rldt_ros.tasks.cube_push import CUBE_START_HIGH
from rldt_ros.tasks.cube_push import CUBE_START_LOW
from rldt_ros.tasks.cube_push import HOME_JITTER_RAD
from rldt_ros.tasks.cube_push import XML_PATH

import mujoco  # after rldt_ros, which sets MUJOCO_GL for headless rendering

DYNAMICS = {'link_mass_scale': [0.8, 1.2], 'object_mass_scale': [0.5, 2.0],
            'friction_scale': [0.5, 1.5], 'damping_scale': [0.5, 2.0],
            'actuator_gain_scale': [0.7, 1.3]}


def _rollout(task, seed: int, steps: int = 25) -> np.ndarray:
    actions = np.random.default_rng(0).uniform(task.action_low, task.action_high, (steps, 4))
    task.reset(seed=seed)
    states = []
    for action in actions:
        task.step(action)
        states.append(np.r_[task.joint_positions(), task.joint_velocities()])
    return np.array(states)


def test_round_trip_and_errors_name_the_field():
    r = Randomization.from_dict({**DYNAMICS, 'joint_position_noise_std': 0.01,
                                 'control_period_jitter': 0.1})
    assert Randomization.from_dict(r.to_dict()) == r
    assert r.link_mass_scale == (0.8, 1.2) and not r.is_nominal
    assert Randomization().is_nominal and Randomization.from_dict({}).is_nominal
    with pytest.raises(ValueError, match="unknown randomization key 'mass'"):
        Randomization.from_dict({'mass': [1, 2]})
    with pytest.raises(ValueError, match='friction_scale must have 0 < low <= high'):
        Randomization(friction_scale=(1.5, 0.5))
    with pytest.raises(ValueError, match='damping_scale must be \\[low, high\\]'):
        Randomization.from_dict({'damping_scale': 2.0})
    with pytest.raises(ValueError, match='joint_velocity_noise_std must be >= 0'):
        Randomization(joint_velocity_noise_std=-0.1)
    with pytest.raises(ValueError, match='control_period_jitter must be < 1'):
        Randomization(control_period_jitter=1.0)
    with pytest.raises(ValueError, match='image_noise_std must be a finite number'):
        Randomization.from_dict({'image_noise_std': 'high'})


def test_nominal_task_is_the_plain_simulation():
    """No randomization = the task as it always was: the start state follows the documented
    draws of the episode seed, and a step is exactly clip + mj_step of the unchanged model."""
    task = make_task('cube_push', randomization=Randomization())
    seed = 11
    rng = np.random.default_rng(seed)
    q_arm = task._home + rng.uniform(-HOME_JITTER_RAD, HOME_JITTER_RAD, 3)
    cube = np.r_[rng.uniform(CUBE_START_LOW, CUBE_START_HIGH), rng.uniform(-np.pi / 4,
                                                                           np.pi / 4)]
    task.reset(seed=seed)
    np.testing.assert_array_equal(task.joint_positions(), np.r_[q_arm, 0.0, cube])
    assert task.perturbation == {}
    model = mujoco.MjModel.from_xml_path(str(XML_PATH))
    data = mujoco.MjData(model)
    data.qpos[:] = task.data.qpos
    data.ctrl[:] = task.data.ctrl
    mujoco.mj_forward(model, data)
    actions = np.random.default_rng(1).uniform(task.action_low - 0.5, task.action_high + 0.5,
                                               (20, 4))
    for action in actions:
        task.step(action)
        data.ctrl[:] = np.clip(action, task.action_low, task.action_high)
        mujoco.mj_step(model, data, nstep=task._substeps)
    np.testing.assert_array_equal(task.data.qpos, data.qpos)
    np.testing.assert_array_equal(task.data.qvel, data.qvel)
    np.testing.assert_array_equal(task.state(), np.r_[task.joint_positions(),
                                                      task.joint_velocities()])
    task.close()


def test_perturbation_is_reproducible_in_range_and_keeps_the_start_state():
    r = Randomization.from_dict(DYNAMICS)
    a = make_task('cube_push', randomization=r)
    b = make_task('cube_push', randomization=r)
    nominal = make_task('cube_push')
    np.testing.assert_array_equal(_rollout(a, 5), _rollout(b, 5))
    assert a.perturbation == b.perturbation
    nominal.reset(seed=5)
    a.reset(seed=5)
    # Perturbations draw from their own stream: the episode starts where the nominal one does.
    np.testing.assert_array_equal(a.joint_positions(), nominal.joint_positions())
    assert not np.allclose(_rollout(a, 5), _rollout(nominal, 5))
    first = dict(a.perturbation)
    a.reset(seed=6)
    assert a.perturbation != first
    drawn = {**a.perturbation, 'friction_scale': a.perturbation['geom_friction_scale'] +
             a.perturbation['joint_friction_scale']}         # friction: per geom and per joint
    for name, (low, high) in DYNAMICS.items():
        values = np.array(drawn[name])
        assert np.all((values >= low) & (values <= high)), name
        assert len(values) == 1 or values.std() > 0, name   # drawn per body / joint / servo
    for task in (a, b, nominal):
        task.close()


def test_model_is_nominal_times_the_drawn_scales_without_accumulating():
    task = make_task('cube_push', randomization=Randomization.from_dict(DYNAMICS))
    plain = make_task('cube_push')
    m, p = task.model, plain.model
    for seed in range(5):                       # many resets: scales must not compound
        task.reset(seed=seed)
    drawn = task.perturbation
    cube = m.body('cube').id
    np.testing.assert_allclose(m.body_mass[cube], p.body_mass[cube] *
                               drawn['object_mass_scale'][0])
    links = [b for b in range(1, m.nbody) if p.body_mass[b] > 0 and b != cube]
    np.testing.assert_allclose(m.body_mass[links], p.body_mass[links] *
                               np.array(drawn['link_mass_scale']))
    np.testing.assert_allclose(m.dof_damping, p.dof_damping * np.array(drawn['damping_scale']))
    gain = np.array(drawn['actuator_gain_scale'])
    np.testing.assert_allclose(m.actuator_gainprm[:, 0], p.actuator_gainprm[:, 0] * gain)
    # Gain and bias together: the servo still aims at its target (force 0 at the target).
    np.testing.assert_allclose(m.actuator_biasprm[:, 1], -m.actuator_gainprm[:, 0])
    np.testing.assert_allclose(m.geom_friction[:, 0], p.geom_friction[:, 0] *
                               np.array(drawn['geom_friction_scale']))
    task.close()
    plain.close()


def test_a_softer_servo_still_reaches_its_target():
    task = make_task('cube_push', randomization=Randomization(actuator_gain_scale=(0.7, 0.7)))
    task.reset(seed=0)
    target = task.joint_positions()[:4] + np.array([0.3, -0.3, 0.2, 0.0])
    for _ in range(60):
        task.step(target)
    np.testing.assert_allclose(task.joint_positions()[:3], target[:3], atol=0.02)
    task.close()


def test_measurement_noise_only_in_what_a_policy_reads():
    std_q, std_v = 0.01, 0.1
    task = make_task('cube_push', randomization=Randomization(
        joint_position_noise_std=std_q, joint_velocity_noise_std=std_v))
    task.reset(seed=2)
    truth = np.r_[task.joint_positions(), task.joint_velocities()]
    readings = np.array([task.state() for _ in range(2000)])
    n = len(task.observed_joints)
    error = readings - truth
    assert abs(error[:, :n].std() - std_q) < 0.1 * std_q
    assert abs(error[:, n:].std() - std_v) < 0.1 * std_v
    assert abs(error.mean()) < 0.01
    np.testing.assert_array_equal(task.privileged_state(), truth)   # the simulator's truth
    task.reset(seed=2)
    again = task.state()
    task.reset(seed=2)
    np.testing.assert_array_equal(task.state(), again)              # reproducible per seed
    task.close()


def test_control_period_jitter_varies_each_period_around_the_nominal():
    task = make_task('cube_push', randomization=Randomization(control_period_jitter=0.2))
    task.reset(seed=0)
    period = 1.0 / task.control_rate_hz
    times = [task.data.time]
    for _ in range(200):
        task.step(task.commanded_targets())
        times.append(task.data.time)
    durations = np.diff(times)
    assert durations.min() >= 0.8 * period - 1e-9 and durations.max() <= 1.2 * period + 1e-9
    assert durations.std() > 0.05 * period
    assert abs(durations.mean() - period) < 0.02 * period
    task.close()


def test_camera_light_and_colour_randomization_change_the_images():
    r = Randomization(camera_position_jitter_m=0.02, camera_rotation_jitter_rad=0.05,
                      light_scale=(0.5, 1.5), color_jitter=0.1, image_noise_std=4.0)
    task = make_task('cube_push_vision', randomization=r)
    plain = make_task('cube_push_vision')
    task.reset(seed=3)
    plain.reset(seed=3)
    images, nominal = task.images(), plain.images()
    assert set(images) == {'front', 'wrist'}
    for camera in images:
        assert images[camera].dtype == np.uint8 and images[camera].shape == (64, 64, 3)
        diff = np.abs(images[camera].astype(int) - nominal[camera].astype(int))
        assert diff.mean() > 2.0, camera
    shift = np.array(task.perturbation['camera_shift_m'])
    assert shift.shape == (2, 3) and np.abs(shift).max() <= 0.02
    np.testing.assert_allclose(task.model.cam_pos, plain.model.cam_pos + shift)
    np.testing.assert_allclose(np.linalg.norm(task.model.cam_quat, axis=1), 1.0)
    task.reset(seed=3)
    again = task.images()
    for camera in images:        # same seed, same perturbation and the same pixel noise
        np.testing.assert_array_equal(again[camera], images[camera])
    task.close()
    plain.close()
