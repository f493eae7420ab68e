"""The robot-side fault table from a test run's JUnit XML: one row per fault test with what it
measured (time to the safe state, first-command jump from the MEASURED arm, the ERROR text).

The ROS tests record these with pytest's `record_property`; both `make test` runs write them:

    python scripts/fault_table.py .colcon/build/rldt_ros/pytest.xml   # after make test
    python -m pytest tests/ros --junitxml=faults.xml && python scripts/fault_table.py faults.xml
"""
import argparse
import sys
import xml.etree.ElementTree as ET

FAULT_FILES = ('test_faults', 'test_image_faults', 'test_readings', 'test_restart',
               'test_trajectory_stop',
               'test_entry_points')


def rows(path: str) -> list[tuple[str, str, str]]:
    """(test, outcome, properties) for every fault test case in the file."""
    out = []
    for case in ET.parse(path).getroot().iter('testcase'):
        if not any(name in case.get('classname', '') for name in FAULT_FILES):
            continue
        outcome = 'skipped' if case.find('skipped') is not None else \
            'FAILED' if case.find('failure') is not None or case.find('error') is not None \
            else 'passed'
        props = [f"{p.get('name')}={p.get('value')}" for p in case.iter('property')]
        out.append((case.get('name'), outcome, '; '.join(props).replace('|', '/')))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('junit_xml')
    args = parser.parse_args(argv)
    table = rows(args.junit_xml)
    if not table:
        print(f'no fault tests in {args.junit_xml}', file=sys.stderr)
        return 1
    print('| fault test | outcome | measured |')
    print('|---|---|---|')
    for name, outcome, props in table:
        print(f'| {name} | {outcome} | {props} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
