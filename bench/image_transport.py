"""Image topic latency and delivery over Fast DDS: the sizes the nodes use vs a VGA camera.

    bash scripts/loopback.sh .venv/bin/python bench/image_transport.py

For each image size x Fast DDS builtin transport (DEFAULT = shared memory + UDP, LARGE_DATA =
shared memory + TCP, set by FASTDDS_BUILTIN_TRANSPORTS in both processes) x subscriber
reliability (best effort = sensor-data QoS, what the policy node uses; reliable), a publisher
process sends rgb8 images at --rate-hz for --seconds and a subscriber process records the
latency from the DDS source timestamp to the callback (both on this computer's clock) and the
fraction of frames delivered. The DEFAULT transport at the smallest size is the baseline of the
ratios. Prints a table and one JSON line. Not a test: `make test` never runs it.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SIZES = {'64x64': (64, 64), '640x480': (480, 640)}


def publish(height: int, width: int, rate_hz: float, seconds: float, reliable: bool) -> None:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('image_bench_pub')
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if reliable \
        else qos_profile_sensor_data
    pub = node.create_publisher(Image, 'bench/image_raw', qos)
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    msg = Image(height=height, width=width, encoding='rgb8', step=width * 3,
                data=pixels.tobytes())
    deadline = time.monotonic() + 2.0  # discovery
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        msg.header.frame_id = str(sent)
        pub.publish(msg)
        sent += 1
        time.sleep(max(0.0, start + sent / rate_hz - time.monotonic()))
    time.sleep(0.5)
    print(json.dumps({'sent': sent}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def subscribe(seconds: float, reliable: bool) -> None:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('image_bench_sub')
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if reliable \
        else qos_profile_sensor_data
    latencies = []

    def on_image(msg, info):
        latencies.append((time.time_ns() - info['source_timestamp']) / 1e6)
    node.create_subscription(Image, 'bench/image_raw', on_image, qos)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({'latency_ms': latencies}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def measure(size: str, transport: str, reliable: bool, rate_hz: float, seconds: float,
            domain: int) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), FASTDDS_BUILTIN_TRANSPORTS=transport)
    height, width = SIZES[size]
    common = ['--reliable'] if reliable else []
    sub = subprocess.Popen([sys.executable, __file__, '--role', 'sub', '--seconds',
                            str(seconds + 4.0), *common], env=env, stdout=subprocess.PIPE)
    time.sleep(1.0)
    pub = subprocess.run([sys.executable, __file__, '--role', 'pub', '--size', size,
                          '--rate-hz', str(rate_hz), '--seconds', str(seconds), *common],
                         env=env, stdout=subprocess.PIPE, check=True)
    sent = json.loads(pub.stdout.decode().strip().splitlines()[-1])['sent']
    latencies = json.loads(sub.communicate(timeout=60)[0].decode().strip().splitlines()[-1])[
        'latency_ms']
    row = {'size': size, 'height': height, 'width': width, 'bytes': height * width * 3,
           'transport': transport, 'reliability': 'reliable' if reliable else 'best_effort',
           'sent': sent, 'received': len(latencies),
           'delivered': len(latencies) / max(sent, 1)}
    if latencies:
        p50, p99 = np.percentile(latencies, [50, 99])
        row.update(p50_ms=float(p50), p99_ms=float(p99))
    else:
        row.update(p50_ms=float('nan'), p99_ms=float('nan'))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--role', choices=['bench', 'pub', 'sub'], default='bench')
    parser.add_argument('--size', default='64x64', choices=sorted(SIZES))
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=sorted(SIZES))
    parser.add_argument('--rate-hz', type=float, default=30.0)
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--reliable', action='store_true')
    parser.add_argument('--domain-id', type=int, default=61)
    args = parser.parse_args()
    if args.role == 'pub':
        publish(*SIZES[args.size], args.rate_hz, args.seconds, args.reliable)
        return
    if args.role == 'sub':
        subscribe(args.seconds, args.reliable)
        return
    rows = []
    for size in args.sizes:
        for transport in ('DEFAULT', 'LARGE_DATA'):
            for reliable in (False, True):
                rows.append(measure(size, transport, reliable, args.rate_hz, args.seconds,
                                    args.domain_id + len(rows)))
    base = rows[0]['p50_ms']
    header = (f'{"size":>8} {"transport":>10} {"reliability":>11} {"delivered":>9} '
              f'{"p50 ms":>7} {"p99 ms":>7} {"p50 vs base":>11}')
    print(f'{args.rate_hz:g} Hz rgb8 images for {args.seconds:g} s per row, {os.cpu_count()} '
          f'CPUs; base = {rows[0]["size"]} DEFAULT best_effort')
    print(header)
    print('-' * len(header))
    for r in rows:
        print(f'{r["size"]:>8} {r["transport"]:>10} {r["reliability"]:>11} '
              f'{r["received"]:4d}/{r["sent"]:<4d} {r["p50_ms"]:7.2f} {r["p99_ms"]:7.2f} '
              f'{r["p50_ms"] / base:10.2f}x')
    print(json.dumps({'bench': 'image_transport', 'cpus': os.cpu_count(),
                      'rate_hz': args.rate_hz, 'rows': rows}))


if __name__ == '__main__':
    main()
