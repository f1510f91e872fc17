"""PowerShell remoting against real pwsh, whenever pwsh is installed.

The registries CI reaches carry no pwsh, so there the PSRP suite runs
against tests/runspace; on a host with pwsh (apt packages from Microsoft, or
the tarball in /opt/microsoft/powershell/7) this drives the default
Microsoft.PowerShell configuration, which winrmd adds when it finds pwsh.
"""
import os

import pytest
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from daemon_util import Daemon, stop_and_check

PWSH = [p for p in ("/usr/bin/pwsh", "/usr/local/bin/pwsh", "/opt/microsoft/powershell/7/pwsh")
        if os.access(p, os.X_OK)]

pytestmark = pytest.mark.skipif(not PWSH, reason="pwsh is not installed on this host")


@pytest.fixture(scope="module")
def pd(tmp_path_factory, tls_cert):
    d = Daemon(tmp_path_factory.mktemp("pwsh"), *tls_cert)
    d.start()
    yield d
    stop_and_check(d)


@pytest.mark.parametrize("config", ["Microsoft.PowerShell", "PowerShell.7"])
def test_real_pwsh_pipeline(pd, users, config):
    w = WSMan("127.0.0.1", port=pd.https_port, username=users.admin.name,
              password=users.admin.password, ssl=True, cert_validation=False, auth="basic",
              encryption="never")
    with RunspacePool(w, configuration_name=config) as pool:
        ps = PowerShell(pool)
        ps.add_script("[Environment]::UserName; 1..3 | ForEach-Object { $_ * 2 }")
        out = ps.invoke()
        assert not ps.had_errors, ps.streams.error
        assert out[0] == users.admin.name
        assert out[1:] == [2, 4, 6]
