"""ament_python package `rldt_ros` (also pip-installable: `pip install -e .[train,ros,dev]`).

`colcon build` installs the robot side only: colcon sets COLCON=1 for the processes it starts
(colcon_core.command), and a colcon workspace is a robot computer's, so the training package
(torch), its `rldt-train` script and its configs stay out. pip installs both sides.
"""
import glob
import os

from setuptools import find_packages
from setuptools import setup

package_name = 'rldt_ros'
ROBOT_ONLY = 'COLCON' in os.environ

# ROS 2 Kilted wheels from PyPI, one distro's versions pinned together. On a ROS 2 install these
# come from the distro instead (package.xml); the `ros` extra is for machines without ROS.
ROS_WHEELS = [
    'ros-rclpy[fastrtps]==9.1.2',
    'ros-builtin-interfaces==2.3.0',
    'ros-rosgraph-msgs==2.3.0',
    'ros-std-msgs==5.5.1',
    'ros-sensor-msgs==5.5.1',
    'ros-geometry-msgs==5.5.1',
    'ros-trajectory-msgs==5.5.1',
    'ros-diagnostic-msgs==5.5.1',
    'ros-std-srvs==5.5.1',
]


def share_files():
    """Launch files, parameter YAML and shipped models, installed under share/rldt_ros."""
    entries = [
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob.glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob.glob('config/*.yaml')),
    ]
    if not ROBOT_ONLY:
        entries.append(('share/' + package_name + '/config/train',
                        glob.glob('config/train/*.yaml')))
    for folder in sorted({os.path.dirname(p) for p in glob.glob('models/**/*', recursive=True)
                          if os.path.isfile(p)}):
        files = [p for p in glob.glob(folder + '/*') if os.path.isfile(p)]
        entries.append(('share/' + package_name + '/' + folder, files))
    return entries


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['tests', 'tests.*', 'bench'] + (
        ['rldt_train', 'rldt_train.*'] if ROBOT_ONLY else [])),
    package_data={'rldt_ros': ['tasks/*.xml']},
    data_files=share_files(),
    python_requires='>=3.10',
    # Only setuptools here, as in every ament_python package: on a ROS 2 machine numpy, yaml and
    # opencv come from rosdep (package.xml), and console scripts must not fail a requirement check
    # because apt's opencv is not called `opencv-python-headless`. pip users take the extras.
    install_requires=['setuptools'],
    extras_require={
        'robot': [
            'numpy',
            'pyyaml',
            'onnxruntime',
            'opencv-python-headless',
            'mujoco==4.0.0',
        ],
        'train': [
            'torch==2.13.0',
            'gymnasium[mujoco]==1.4.0',
            'onnx',
            'h5py',
            'tensorboard',
            'tqdm',
            'matplotlib',
            'stable-baselines3',
            'rich',
        ],
        'ros': ROS_WHEELS,
        'gpu': ['onnxruntime-gpu'],
        # `test` is what colcon test reads (pytest as a test dependency); onnx builds the
        # tests' hand-made graphs.
        'test': ['pytest', 'pytest-timeout', 'onnx'],
        'dev': ['pytest', 'pytest-timeout', 'onnx', 'ruff'],
    },
    zip_safe=True,
    maintainer='rldt_ros maintainers',
    maintainer_email='maintainers@rldt-ros.dev',
    description='Flow-matching policies fine-tuned with RLDT, run in real time by ROS 2 nodes.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': ([] if ROBOT_ONLY else ['rldt-train = rldt_train.cli:main']) + [
            'rldt-ros = rldt_ros.cli:main',
            'policy_node = rldt_ros.policy_node:main',
            'sim_node = rldt_ros.sim_node:main',
        ],
    },
)
