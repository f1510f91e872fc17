"""What every test in tests/pwsh needs: real pwsh, dotnet and the built client.
They fail, never skip, when one is missing: this suite exists to run real pwsh."""
import os

import pytest

from pwsh_util import CLIENT_DLL, DOTNET, PWSH_DLL


@pytest.fixture(scope="session", autouse=True)
def pwsh_prerequisites():
    assert os.access(DOTNET, os.X_OK), "%s missing: install the .NET SDK" % DOTNET
    assert os.path.exists(PWSH_DLL), "pwsh missing at %s (set PWSH_DLL_DIR)" % PWSH_DLL
    assert os.path.exists(CLIENT_DLL), "client not built: run tests/pwsh/build.sh"
