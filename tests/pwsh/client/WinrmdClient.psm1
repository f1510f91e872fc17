# WinrmdClient.psm1 - PowerShell front end of the winrmd test client (runs in
# the test's pwsh process).  Loads WinrmdClient.dll (built by
# tests/pwsh/build.sh) and returns real PSSession objects whose transport is
# WS-Man to winrmd, so Invoke-Command -Session drives PowerShell's own client
# engine against the server.

$dll = Join-Path $PSScriptRoot 'bin/WinrmdClient.dll'
if (-not (Test-Path $dll)) {
    throw "WinrmdClient.dll is not built: run tests/pwsh/build.sh ($dll missing)"
}
Add-Type -Path $dll

function New-WinrmdConnectionInfo {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)] [Uri] $Uri,
        [Parameter(Mandatory)] [pscredential] $Credential,
        [string] $ConfigurationName = 'Microsoft.PowerShell',
        [int] $ReceiveTimeoutSeconds = 20,
        # Leave the WS-Man CommandId to the server instead of the pipeline id.
        [switch] $NoCommandId,
        # Negotiate: NTLM per connection, bodies sealed over http:// (as Windows);
        # Kerberos: SPNEGO with Kerberos, from the ticket cache when the password is empty.
        [ValidateSet('Basic', 'Negotiate', 'Kerberos')] [string] $Authentication = 'Basic'
    )
    $ci = [Winrmd.Client.WinrmdConnectionInfo]::new($Uri, $Credential, $ConfigurationName)
    $ci.AuthenticationMechanism = $Authentication
    $ci.ReceiveTimeoutSeconds = $ReceiveTimeoutSeconds
    $ci.SendCommandId = -not $NoCommandId
    $ci
}

function New-WinrmdSession {
    <# A PSSession over WS-Man to winrmd (Basic or Negotiate; HTTPS certificate not checked). #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)] [Uri] $Uri,
        [Parameter(Mandatory)] [pscredential] $Credential,
        [string] $ConfigurationName = 'Microsoft.PowerShell',
        [int] $ReceiveTimeoutSeconds = 20,
        [ValidateSet('Basic', 'Negotiate', 'Kerberos')] [string] $Authentication = 'Basic'
    )
    $ci = New-WinrmdConnectionInfo -Uri $Uri -Credential $Credential -ConfigurationName $ConfigurationName `
        -ReceiveTimeoutSeconds $ReceiveTimeoutSeconds -Authentication $Authentication
    [Winrmd.Client.WinrmdSession]::Open($ci, $Host, $PSCmdlet)
}

function New-WinrmdRunspacePool {
    <# An opened RunspacePool with MaxRunspaces runspaces in one winrmd shell. #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)] [Uri] $Uri,
        [Parameter(Mandatory)] [pscredential] $Credential,
        [string] $ConfigurationName = 'Microsoft.PowerShell',
        [int] $MaxRunspaces = 5
    )
    $ci = New-WinrmdConnectionInfo -Uri $Uri -Credential $Credential -ConfigurationName $ConfigurationName
    [Winrmd.Client.WinrmdSession]::OpenPool($ci, 1, $MaxRunspaces, $Host)
}

Export-ModuleMember -Function New-WinrmdConnectionInfo, New-WinrmdSession, New-WinrmdRunspacePool
