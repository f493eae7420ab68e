"""Fixtures for node tests: a tiny ONNX model built without torch, isolated DDS domains, a probe
node in the test process, and child processes started through `rldt-ros run`.

Every test gets its own ROS_DOMAIN_ID; `make test` runs pytest inside a loopback-only network
namespace (scripts/loopback.sh), so nothing here can reach another machine.
"""
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import rclpy
from onnx import TensorProto
from onnx import helper
from rcl_interfaces.srv import GetParameters
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter import parameter_value_to_python

from rldt_ros.model_card import write_model_card

REPO = Path(__file__).resolve().parents[2]
CUBE_JOINTS = ['shoulder', 'elbow', 'wrist', 'gripper', 'cube_x', 'cube_y', 'cube_yaw']
CUBE_ACTUATED = CUBE_JOINTS[:4]
# The cube_push arm's joint ranges (rldt_ros/tasks/cube_push.xml): a model with narrower limits
# would see the simulated arm's readings as implausible.
CUBE_LOW = [-2.0, -2.8, -2.6, 0.0]
CUBE_HIGH = [2.0, 2.8, 2.6, 0.03]
_DOMAINS = itertools.count(1 + os.getpid() % 50)


def make_model(folder: Path, joints=CUBE_JOINTS, actions=CUBE_ACTUATED, low=CUBE_LOW,
               high=CUBE_HIGH, chunk_length=4, steps_per_chunk=2, rate_hz=20.0, cameras=(),
               bias=0.0, image_gain=0.0, task='cube_push', noise_gain=0.0,
               training_conditions=None) -> Path:
    """A model folder whose graph is exact and cheap: actions[b, h, a] = obs_state[b, a] + bias
    + image_gain * mean(R channel of obs_<camera 0>) / 255 + noise_gain * noise.

    Holding the current joint positions (bias 0) keeps a simulated arm still, so a closed loop
    with it must stay finite and inside limits; the image term lets a test check colour decoding.
    """
    folder.mkdir(parents=True, exist_ok=True)
    d, a, h = 2 * len(joints), len(actions), chunk_length
    inputs = [helper.make_tensor_value_info('obs_state', TensorProto.FLOAT, ['B', d]),
              helper.make_tensor_value_info('noise', TensorProto.FLOAT, ['B', h, a])]
    init = [helper.make_tensor('starts', TensorProto.INT64, [1], [0]),
            helper.make_tensor('ends', TensorProto.INT64, [1], [a]),
            helper.make_tensor('axes', TensorProto.INT64, [1], [1]),
            helper.make_tensor('unsq', TensorProto.INT64, [1], [1]),
            helper.make_tensor('bias', TensorProto.FLOAT, [1], [bias]),
            helper.make_tensor('zero', TensorProto.FLOAT, [1], [noise_gain])]
    nodes = [helper.make_node('Slice', ['obs_state', 'starts', 'ends', 'axes'], ['pos']),
             helper.make_node('Unsqueeze', ['pos', 'unsq'], ['pos3']),
             helper.make_node('Add', ['pos3', 'bias'], ['target']),
             helper.make_node('Mul', ['noise', 'zero'], ['noise0']),
             helper.make_node('Add', ['target', 'noise0'], ['out0'])]
    last = 'out0'
    for i, cam in enumerate(cameras):
        name = f'obs_{cam["name"]}'
        inputs.append(helper.make_tensor_value_info(
            name, TensorProto.UINT8, ['B', cam['height'], cam['width'], 3]))
        gain = image_gain / 255.0 if i == 0 else 0.0
        init += [helper.make_tensor(f'{name}_ch', TensorProto.INT64, [], [0]),
                 helper.make_tensor(f'{name}_gain', TensorProto.FLOAT, [1], [gain]),
                 helper.make_tensor(f'{name}_shape', TensorProto.INT64, [3], [-1, 1, 1])]
        nodes += [helper.make_node('Cast', [name], [f'{name}_f'], to=TensorProto.FLOAT),
                  helper.make_node('Gather', [f'{name}_f', f'{name}_ch'], [f'{name}_r'], axis=3),
                  helper.make_node('ReduceMean', [f'{name}_r'], [f'{name}_m'], axes=[1, 2],
                                   keepdims=0),
                  helper.make_node('Reshape', [f'{name}_m', f'{name}_shape'], [f'{name}_m3']),
                  helper.make_node('Mul', [f'{name}_m3', f'{name}_gain'], [f'{name}_t']),
                  helper.make_node('Add', [last, f'{name}_t'], [f'{name}_out'])]
        last = f'{name}_out'
    nodes.append(helper.make_node('Identity', [last], ['actions']))
    graph = helper.make_graph(nodes, 'test_policy', inputs,
                              [helper.make_tensor_value_info('actions', TensorProto.FLOAT,
                                                             ['B', h, a])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, folder / 'policy.onnx')
    write_model_card(folder, {
        'name': 'test_hold', 'version': '0.0.1', 'task': task,
        'observation': {'state': {'joints': list(joints), 'fields': ['position', 'velocity'],
                                  'dim': d},
                        'cameras': [dict(c) for c in cameras]},
        'action': {'dim': a, 'names': list(actions), 'units': 'rad',
                   'low': np.broadcast_to(low, a).tolist(),
                   'high': np.broadcast_to(high, a).tolist(),
                   'chunk_length': h, 'steps_per_chunk': steps_per_chunk,
                   'control_rate_hz': rate_hz},
        'sampler': {'steps': 1, 'method': 'euler', 'noise': 'gaussian'},
        'files': {'policy.onnx': {}},
        'provenance': {'built_by': 'tests/ros/conftest.py'},
        **({'training_conditions': training_conditions} if training_conditions is not None
           else {}),
    })
    return folder


@pytest.fixture
def model(tmp_path) -> Path:
    return make_model(tmp_path / 'model')


@pytest.fixture
def domain_id() -> int:
    return next(_DOMAINS)


class Probe:
    """A node in the test process that publishes and records, spun in a background thread."""

    def __init__(self, domain_id: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.RLock()
        self.records: dict[str, list] = {}
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def record(self, msg_type, topic: str, qos=10) -> list:
        """Messages on topic as (monotonic receive time, msg); the list grows in place."""
        log = self.records.setdefault(topic, [])

        def store(msg):
            with self.lock:
                log.append((time.monotonic(), msg))
        self.node.create_subscription(msg_type, topic, store, qos)
        return log

    def publish_at(self, msg_type, topic: str, rate_hz: float, make, qos=10):
        """Publishes make() (a message, or None to skip) at rate_hz from the probe's executor."""
        pub = self.node.create_publisher(msg_type, topic, qos)

        def tick():
            msg = make()
            if msg is not None:
                pub.publish(msg)
        return self.node.create_timer(1.0 / rate_hz, tick)

    def call(self, srv_type, name: str, timeout_s: float = 5.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout_s), f'no service {name}'
        future = client.call_async(srv_type.Request())
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.done(), f'{name} did not answer'
        return future.result()

    def set_parameters(self, node: str, **values):
        """Sets parameters of a running node over its parameter service; returns the results
        (successful, reason) in order."""
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()
                        for name, value in values.items()])
        client = self.node.create_client(SetParameters, f'/{node}/set_parameters')
        assert client.wait_for_service(timeout_sec=5.0), f'no parameter service on {node}'
        future = client.call_async(request)
        deadline = time.monotonic() + 5.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.done(), f'{node}/set_parameters did not answer'
        return future.result().results

    def get_parameters(self, node: str, names: list[str]) -> dict:
        """Current values of a running node's parameters, by name."""
        client = self.node.create_client(GetParameters, f'/{node}/get_parameters')
        assert client.wait_for_service(timeout_sec=5.0), f'no parameter service on {node}'
        future = client.call_async(GetParameters.Request(names=names))
        deadline = time.monotonic() + 5.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.done(), f'{node}/get_parameters did not answer'
        return {name: parameter_value_to_python(value)
                for name, value in zip(names, future.result().values)}

    def stats(self, topic='/policy_node/stats') -> list[dict]:
        with self.lock:
            return [json.loads(m.data) for _, m in self.records.get(topic, [])]

    def wait_for(self, predicate, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                value = predicate()
            if value:
                return value
            time.sleep(0.02)
        with self.lock:
            received = {topic: len(log) for topic, log in self.records.items()}
        raise AssertionError(f'timed out after {timeout_s} s waiting for {what} '
                             f'(messages received per topic: {received})')

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def probe(domain_id):
    p = Probe(domain_id)
    yield p
    p.close()


class Processes:
    """Child processes started like a user would (`rldt-ros run ...`); stopped at test end."""

    def __init__(self, domain_id: int, log_dir: Path):
        self.domain_id = domain_id
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str) -> subprocess.Popen:
        env = dict(os.environ, ROS_DOMAIN_ID=str(self.domain_id), PYTHONUNBUFFERED='1')
        log_path = self.log_dir / f'proc{len(self.procs)}.log'
        with open(log_path, 'w') as log:
            proc = subprocess.Popen([sys.executable, '-m', 'rldt_ros.cli', *args], env=env,
                                    stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                    start_new_session=True)
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def output(proc) -> str:
    return Path(proc.log_path).read_text()


@pytest.fixture
def procs(domain_id, tmp_path):
    p = Processes(domain_id, tmp_path)
    yield p
    p.stop_all()


LOG_TAIL_LINES = 80


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing node test shows what its child processes printed (their logs live in the
    test's tmp_path, which a CI machine does not keep): the last lines of each, in the report."""
    outcome = yield
    report = outcome.get_result()
    procs = getattr(item, 'funcargs', {}).get('procs')
    if report.when != 'call' or not report.failed or procs is None:
        return
    for proc in procs.procs:
        lines = Path(proc.log_path).read_text(errors='replace').splitlines()
        state = 'running' if proc.poll() is None else f'exit code {proc.returncode}'
        report.sections.append((f'{" ".join(proc.args[3:6])} ({state}), last '
                                f'{LOG_TAIL_LINES} lines', '\n'.join(lines[-LOG_TAIL_LINES:])))
