"""Domain randomization of a MuJoCo world: what may differ between simulation and the robot.

A policy trained in one exact simulator learns that simulator's masses, frictions, gains,
perfect sensors and exact timing; a robot has none of them exactly. `Randomization` says how
far each may differ; a task re-samples the perturbation at every reset from its seeded
generator, so an episode is reproducible from its seed. `Randomization()` is nominal: nothing
is sampled and nothing changes (the nominal task stays bit-identical).

Pure numpy + mujoco: the sim node applies the same randomization as training.
"""
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import fields
from typing import Sequence

import mujoco
import numpy as np

Range = tuple[float, float]
NOMINAL_SCALE: Range = (1.0, 1.0)


@dataclass(frozen=True)
class Randomization:
    """Ranges of the per-episode perturbation; every scale is drawn uniformly from [low, high]
    independently per body, geom, joint, actuator or light. Defaults: nominal."""

    link_mass_scale: Range = NOMINAL_SCALE
    """Mass (and inertia, i.e. density) of each robot body, times U[low, high]."""
    object_mass_scale: Range = NOMINAL_SCALE
    """Mass (and inertia) of each manipulated object (a task's OBJECT_BODIES), times U[...]."""
    friction_scale: Range = NOMINAL_SCALE
    """Sliding friction of each geom and dry friction (frictionloss) of each joint, times
    U[...]; in cube_push the cube's table friction is its joints' frictionloss."""
    damping_scale: Range = NOMINAL_SCALE
    """Viscous damping of each joint, times U[...]."""
    actuator_gain_scale: Range = NOMINAL_SCALE
    """Stiffness kp of each position servo, times U[...] (gain and bias together, so the servo
    still aims at its target, only harder or softer)."""
    joint_position_noise_std: float = 0.0
    """Gaussian noise (rad or m) on every measured joint position, per reading."""
    joint_velocity_noise_std: float = 0.0
    """Gaussian noise (rad/s or m/s) on every measured joint velocity, per reading."""
    control_period_jitter: float = 0.0
    """Each control period lasts the nominal period times 1 + U[-jitter, jitter] (a robot's
    controller and network do not tick exactly); < 1."""
    camera_position_jitter_m: float = 0.0
    """Each camera's mounting position moves by U[-j, j] metres per axis."""
    camera_rotation_jitter_rad: float = 0.0
    """Each camera's orientation turns by a rotation vector drawn from U[-j, j] per axis."""
    light_scale: Range = NOMINAL_SCALE
    """Diffuse and ambient intensity of each light (and the headlight), times U[...]."""
    color_jitter: float = 0.0
    """Each geom's and material's RGB moves by U[-j, j] per channel (clipped to [0, 1])."""
    image_noise_std: float = 0.0
    """Gaussian noise on observed camera pixels (0-255 units), per image."""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == Range:
                value = _range(f.name, value)
                object.__setattr__(self, f.name, value)
            else:
                value = _number(f.name, value)
                object.__setattr__(self, f.name, value)
                if value < 0:
                    raise ValueError(f'randomization.{f.name} must be >= 0, got {value}')
        if self.control_period_jitter >= 1.0:
            raise ValueError(f'randomization.control_period_jitter must be < 1, got '
                             f'{self.control_period_jitter}')

    @classmethod
    def from_dict(cls, data: dict | None) -> 'Randomization':
        """From a config / parameter mapping; an unknown key is an error naming it."""
        data = data or {}
        if not isinstance(data, dict):
            raise ValueError(f'randomization must be a mapping, got {data!r}')
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise ValueError(f'unknown randomization key {key!r}; known: {", ".join(known)}')
        return cls(**data)

    def to_dict(self) -> dict:
        """Plain lists and floats (YAML / JSON ready); from_dict(to_dict()) == self."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def is_nominal(self) -> bool:
        return self == Randomization()

    @property
    def changes_model(self) -> bool:
        """Whether any per-episode model parameter is perturbed (not only noise / timing)."""
        model_fields = ('link_mass_scale', 'object_mass_scale', 'friction_scale',
                        'damping_scale', 'actuator_gain_scale', 'camera_position_jitter_m',
                        'camera_rotation_jitter_rad', 'light_scale', 'color_jitter')
        nominal = Randomization()
        return any(getattr(self, n) != getattr(nominal, n) for n in model_fields)


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not np.isfinite(value):
        raise ValueError(f'randomization.{name} must be a finite number, got {value!r}')
    return float(value)


def _range(name: str, value) -> Range:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f'randomization.{name} must be [low, high], got {value!r}')
    low, high = (_number(name, v) for v in value)
    if not 0.0 < low <= high:
        raise ValueError(f'randomization.{name} must have 0 < low <= high, got {value!r}')
    return (low, high)


class ModelRandomizer:
    """Applies a Randomization to one MjModel: remembers the nominal values and, per episode,
    writes nominal x sampled scales (or + offsets) back, so perturbations never accumulate."""

    def __init__(self, model: mujoco.MjModel, randomization: Randomization,
                 object_bodies: Sequence[str] = ()):
        self.model = model
        self.randomization = randomization
        objects = {model.body(name).id for name in object_bodies}
        massive = [b for b in range(1, model.nbody) if model.body_mass[b] > 0]
        self._objects = np.array([b for b in massive if b in objects], dtype=np.intp)
        self._links = np.array([b for b in massive if b not in objects], dtype=np.intp)
        self._servos = np.array([i for i in range(model.nu) if
                                 int(model.actuator_biastype[i]) ==
                                 int(mujoco.mjtBias.mjBIAS_AFFINE)], dtype=np.intp)
        self._nominal = {name: getattr(model, name).copy() for name in (
            'body_mass', 'body_inertia', 'geom_friction', 'dof_frictionloss', 'dof_damping',
            'actuator_gainprm', 'actuator_biasprm', 'cam_pos', 'cam_quat', 'light_diffuse',
            'light_ambient', 'geom_rgba', 'mat_rgba')}
        self._headlight = (model.vis.headlight.diffuse.copy(),
                           model.vis.headlight.ambient.copy())
        self.timestep = float(model.opt.timestep)

    def sample(self, rng: np.random.Generator, data: mujoco.MjData) -> dict:
        """Draws and applies one episode's perturbation; returns what was drawn (lists, for
        logging). Call before the episode's state is set: it may recompute the model's derived
        constants (mj_setConst) after a mass change, which overwrites data."""
        r, m, nom = self.randomization, self.model, self._nominal
        drawn: dict = {}

        def scales(name: str, bounds: Range, n: int) -> np.ndarray:
            value = rng.uniform(bounds[0], bounds[1], n)
            drawn[name] = value.tolist()
            return value

        mass = np.ones(m.nbody)
        mass[self._links] = scales('link_mass_scale', r.link_mass_scale, len(self._links))
        mass[self._objects] = scales('object_mass_scale', r.object_mass_scale,
                                     len(self._objects))
        m.body_mass[:] = nom['body_mass'] * mass
        m.body_inertia[:] = nom['body_inertia'] * mass[:, None]
        m.geom_friction[:] = nom['geom_friction']
        m.geom_friction[:, 0] *= scales('geom_friction_scale', r.friction_scale, m.ngeom)
        m.dof_frictionloss[:] = nom['dof_frictionloss'] * scales(
            'joint_friction_scale', r.friction_scale, m.nv)
        m.dof_damping[:] = nom['dof_damping'] * scales('damping_scale', r.damping_scale, m.nv)
        gain = scales('actuator_gain_scale', r.actuator_gain_scale, len(self._servos))
        m.actuator_gainprm[:] = nom['actuator_gainprm']
        m.actuator_biasprm[:] = nom['actuator_biasprm']
        m.actuator_gainprm[self._servos, 0] *= gain
        m.actuator_biasprm[self._servos, 1] *= gain
        self._cameras(rng, drawn)
        light = scales('light_scale', r.light_scale, m.nlight + 1)
        m.light_diffuse[:] = nom['light_diffuse'] * light[:-1, None]
        m.light_ambient[:] = nom['light_ambient'] * light[:-1, None]
        m.vis.headlight.diffuse[:] = self._headlight[0] * light[-1]
        m.vis.headlight.ambient[:] = self._headlight[1] * light[-1]
        for name in ('geom_rgba', 'mat_rgba'):
            rgba = nom[name].copy()
            if r.color_jitter > 0:
                rgba[:, :3] = np.clip(rgba[:, :3] + rng.uniform(
                    -r.color_jitter, r.color_jitter, rgba[:, :3].shape), 0.0, 1.0)
            getattr(m, name)[:] = rgba
        if r.link_mass_scale != NOMINAL_SCALE or r.object_mass_scale != NOMINAL_SCALE:
            mujoco.mj_setConst(m, data)
        return drawn

    def _cameras(self, rng: np.random.Generator, drawn: dict) -> None:
        r, m = self.randomization, self.model
        shift = rng.uniform(-r.camera_position_jitter_m, r.camera_position_jitter_m,
                            (m.ncam, 3))
        m.cam_pos[:] = self._nominal['cam_pos'] + shift
        turn = rng.uniform(-r.camera_rotation_jitter_rad, r.camera_rotation_jitter_rad,
                           (m.ncam, 3))
        for i in range(m.ncam):
            delta = np.zeros(4)
            mujoco.mju_axisAngle2Quat(delta, turn[i] / max(np.linalg.norm(turn[i]), 1e-12),
                                      float(np.linalg.norm(turn[i])))
            mujoco.mju_mulQuat(m.cam_quat[i], self._nominal['cam_quat'][i], delta)
        drawn['camera_shift_m'] = shift.tolist()
        drawn['camera_turn_rad'] = turn.tolist()

    def control_timestep(self, rng: np.random.Generator) -> float:
        """The physics timestep for one control period with jitter (the number of physics
        steps per period stays, their length varies)."""
        jitter = self.randomization.control_period_jitter
        return self.timestep * (1.0 + rng.uniform(-jitter, jitter))
