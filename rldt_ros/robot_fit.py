"""Does this model fit this robot? The start-up checks of the policy node, without ROS.

The model card says which joints and cameras the model uses and where it may act; the node's
parameters say what the robot has (`joint_names`, `cameras`, `joint_limits_low/high`,
`robot_description`). A mismatch refuses to start with one line saying how they differ.
"""
from dataclasses import dataclass

import numpy as np

from rldt_ros import joint_limits
from rldt_ros.model_card import ModelCard


class FitError(ValueError):
    """The model does not fit the robot configuration; the message says how."""


@dataclass(frozen=True)
class Fit:
    joint_names: list[str]   # commanded joints in output order
    out_index: np.ndarray    # output position i takes the card's action out_index[i]
    low: np.ndarray          # joint limits in force, card order
    high: np.ndarray
    limits_from: str         # which sources set them, for the start-up log


def fit(card: ModelCard, p: dict) -> Fit:
    """Checks the card against the robot parameters `p` (the node's parameter values)."""
    joints = list(p['joint_names'])
    if joints and (len(joints) != card.action_dim or set(joints) != set(card.action_names)):
        raise FitError(f'joint_names {joints} ({len(joints)} joints) do not match the model card '
                       f'action.names {list(card.action_names)} ({card.action_dim} joints)')
    cameras = sorted(p['cameras'])
    card_cameras = sorted(c.name for c in card.cameras)
    if cameras and cameras != card_cameras:
        raise FitError(f'cameras {cameras} do not match the model card {card_cameras}')
    if p['refill_threshold'] >= card.chunk_length:
        raise FitError(f'refill_threshold {p["refill_threshold"]} must be < chunk_length '
                       f'{card.chunk_length}')
    joints = joints or list(card.action_names)
    try:
        # joint_limits_low/high are in the output order (joint_names): mapped by name here.
        by_name = joint_limits.parameter_limits(joints, p['joint_limits_low'],
                                                p['joint_limits_high'])
        urdf = joint_limits.urdf_limits(p['robot_description']) \
            if p['robot_description'] else {}
        low, high = joint_limits.intersect(list(card.action_names), card.action_low,
                                           card.action_high, by_name, urdf)
    except joint_limits.JointLimitsError as exc:
        raise FitError(str(exc)) from exc
    used = len(set(urdf) & set(card.action_names))
    sources = ['model card'] + (['joint_limits_low/high'] if by_name else []) + \
        ([f'robot_description ({used} of the joints)'] if urdf else [])
    return Fit(joint_names=joints,
               out_index=np.array([card.action_names.index(j) for j in joints], dtype=np.intp),
               low=low, high=high, limits_from=' and '.join(sources))


def training_mismatch(card: ModelCard, max_delta_per_tick: float) -> str | None:
    """How this node's command filter differs from the one the model was trained with, or None
    when they agree or the card does not say (older cards have no training_conditions).

    Not a start-up refusal: a policy may well run under another cap, but one trained without
    the cap it meets here (or with a looser one) has never seen its own commands slowed down,
    which took the shipped model from 63% to 15% success in simulation; operators should know.
    """
    conditions = card.training_conditions
    if 'command_filter' not in conditions:
        return None
    trained = conditions['command_filter']
    if trained is None:
        return (f'max_delta_per_tick {max_delta_per_tick:g}: the model was trained without a '
                'command filter (model card training_conditions.command_filter)')
    trained_delta = float(trained['max_delta_per_tick'])
    if abs(trained_delta - max_delta_per_tick) > 1e-9:
        return (f'max_delta_per_tick {max_delta_per_tick:g} differs from the '
                f'{trained_delta:g} the model was trained with (model card '
                'training_conditions.command_filter)')
    return None
