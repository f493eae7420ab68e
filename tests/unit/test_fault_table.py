"""scripts/fault_table.py reads the properties the ROS fault tests record."""
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / 'scripts' / 'fault_table.py'
XML = """<?xml version="1.0"?>
<testsuites><testsuite name="pytest">
 <testcase classname="tests.ros.test_restart" name="test_first_command_ramps">
  <properties><property name="first_command_jump_rad" value="0.1"/></properties></testcase>
 <testcase classname="tests.ros.test_faults" name="test_nan"><failure message="x"/></testcase>
 <testcase classname="tests.unit.test_safety" name="test_clamp"/>
</testsuite></testsuites>
"""


def test_fault_table_lists_fault_tests_with_outcome_and_measurements(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('fault_table', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path / 'pytest.xml'
    path.write_text(XML)
    assert module.rows(str(path)) == [
        ('test_first_command_ramps', 'passed', 'first_command_jump_rad=0.1'),
        ('test_nan', 'FAILED', '')]
    assert module.main([str(path)]) == 0
    assert '| test_first_command_ramps | passed | first_command_jump_rad=0.1 |' in \
        capsys.readouterr().out
