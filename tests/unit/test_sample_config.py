"""The committed sample configuration matches the option definitions."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_sample_config_is_current(tmp_path):
    generated = tmp_path / "kuryr.conf.sample"
    generator = pathlib.Path(sys.executable).parent / "oslo-config-generator"
    subprocess.run([str(generator), "--namespace", "kuryrnet", "--output-file", str(generated)],
                   check=True)
    committed = (ROOT / "etc" / "kuryr.conf.sample").read_text()
    assert generated.read_text() == committed, "run `make sample-config` and commit etc/kuryr.conf.sample"
