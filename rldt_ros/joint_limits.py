"""The joint limits the policy node enforces: the robot's own, intersected with the model card's.

The card says where the model was trained to act; the robot (parameters `joint_limits_low` /
`joint_limits_high`, or the URDF in `robot_description`) says where the hardware may go. A
command must satisfy both, so the node clamps to the intersection and refuses to start when it
is empty for any joint. Pure Python + numpy: the URDF is read with xml.etree, no ROS needed.
"""
import xml.etree.ElementTree as ElementTree

import numpy as np


class JointLimitsError(ValueError):
    """Limits that cannot be used; the message names the joint or the source."""


def urdf_limits(urdf_xml: str) -> dict[str, tuple[float, float]]:
    """{joint: (lower, upper)} of the revolute and prismatic joints of a URDF string.

    Continuous and fixed joints have no position limits and are left out.
    """
    try:
        root = ElementTree.fromstring(urdf_xml)
    except ElementTree.ParseError as exc:
        raise JointLimitsError(f'robot_description is not valid XML ({exc})') from exc
    limits = {}
    for joint in root.iter('joint'):
        limit = joint.find('limit')
        if joint.get('type') not in ('revolute', 'prismatic') or limit is None:
            continue
        name = joint.get('name')
        try:
            lower, upper = float(limit.get('lower', 0.0)), float(limit.get('upper', 0.0))
        except ValueError as exc:
            raise JointLimitsError(f'robot_description: joint {name!r} has a non-numeric '
                                   f'<limit> ({exc})') from exc
        limits[name] = (lower, upper)
    return limits


def parameter_limits(names: list[str], low: list[float] | None,
                     high: list[float] | None) -> dict[str, tuple[float, float]]:
    """{joint: (low, high)} from the joint_limits_low / joint_limits_high parameters, given in
    the order of `names` (the commanded joints); both unset = no limits."""
    low, high = list(low or []), list(high or [])
    if not low and not high:
        return {}
    if len(low) != len(names) or len(high) != len(names):
        raise JointLimitsError(f'joint_limits_low/high need {len(names)} values each (one per '
                               f'joint of {names}), got {len(low)} and {len(high)}')
    return {n: (lo, hi) for n, lo, hi in zip(names, low, high)}


def intersect(names: list[str], card_low, card_high,
              *robot: dict[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per joint of `names`: the card's box intersected with every robot source.

    Raises JointLimitsError naming the first joint whose intersection is empty or not finite.
    """
    low = np.array(card_low, dtype=np.float64)
    high = np.array(card_high, dtype=np.float64)
    for source in robot:
        for i, name in enumerate(names):
            if name in source:
                low[i] = max(low[i], source[name][0])
                high[i] = min(high[i], source[name][1])
    for i, name in enumerate(names):
        if not (np.isfinite(low[i]) and np.isfinite(high[i]) and low[i] <= high[i]):
            raise JointLimitsError(
                f'joint {name!r}: no position is allowed by both the model card '
                f'[{card_low[i]}, {card_high[i]}] and the robot limits '
                f'({", ".join(f"[{s[name][0]}, {s[name][1]}]" for s in robot if name in s)})')
    return low, high


def describe(names: list[str], low: np.ndarray, high: np.ndarray, units: list[str]) -> str:
    """One line for the startup log: 'shoulder [-2, 2] rad, ...'."""
    return ', '.join(f'{n} [{lo:g}, {hi:g}] {u}'.rstrip()
                     for n, lo, hi, u in zip(names, low, high, units))
