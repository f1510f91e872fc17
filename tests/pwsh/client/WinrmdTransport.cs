// WinrmdTransport.cs - a WS-Man transport for PowerShell's own client engine
// (runs inside the test's pwsh process, loaded by WinrmdClient.psm1).
//
// pwsh 7.4+ ships no WS-Man client on Linux, but its client engine accepts
// custom transports: a RunspaceConnectionInfo whose transport manager derives
// from ClientSessionTransportManagerBase.  That base class talks the
// out-of-process protocol (the one `pwsh -s` speaks on stdin/stdout): it
// writes <Data>/<Command>/<Signal>/<Close> lines to a TextWriter we give it and
// expects <Data>/<DataAck>/<CommandAck>/<SignalAck>/<CloseAck> lines back.
// This file turns those lines into the WS-Man operations a Windows client
// sends (WSManTransportManager.cs): Create with creationXml, Command with the
// CREATE_PIPELINE fragments as Arguments and CommandId = the pipeline id in
// upper case, Send, long-poll Receive, Signal powershell/signal/crtl_c,
// Signal terminate for a pipeline's close, Delete for the pool's close.
// So PowerShell's real fragmenter, serializer, host calls and pipelines run
// against winrmd unchanged; only the wire underneath is ours.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Remoting;
using System.Management.Automation.Remoting.Client;
using System.Management.Automation.Runspaces;
using System.Management.Automation.Internal;
using System.Net.Http;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using System.Xml.Linq;

namespace Winrmd.Client
{
    /// <summary>Where and how to reach winrmd; hand it to RunspaceFactory.</summary>
    public sealed class WinrmdConnectionInfo : RunspaceConnectionInfo
    {
        public Uri Uri { get; set; }
        public string ConfigurationName { get; set; } = "Microsoft.PowerShell";
        public bool SkipCertificateCheck { get; set; } = true;
        /// <summary>Seconds a Receive may park on the server before it answers "timed out".</summary>
        public int ReceiveTimeoutSeconds { get; set; } = 20;
        /// <summary>
        /// Send the pipeline id as the WS-Man CommandId, as Windows does.  When
        /// false, the Command carries none and the server picks one (as some
        /// non-PowerShell clients do); the client then uses the server's id.
        /// </summary>
        public bool SendCommandId { get; set; } = true;
        /// <summary>
        /// The WS-Man ShellId of the last pool this process created, for tests
        /// that add raw requests to a shell (the engine works on a clone of the
        /// connection info, so the id cannot live on the caller's instance).
        /// </summary>
        public static string LastShellId { get; internal set; }
        /// <summary>Ask the server to end a pipeline with Signal terminate when the engine closes it.</summary>
        public bool TerminateOnClose { get; set; } = true;

        private PSCredential _credential;
        private AuthenticationMechanism _auth = AuthenticationMechanism.Basic;

        public WinrmdConnectionInfo(Uri uri, PSCredential credential, string configurationName)
        {
            // Windows' client addresses .../wsman?PSVersion=<its version> (WSManTransportManager
            // Initialize); the server shows that URL in $PSSenderInfo.ConnectionString.
            Uri = string.IsNullOrEmpty(uri.Query)
                ? new Uri(uri.OriginalString.TrimEnd('/') + "?PSVersion=" + PSVersionInfo.PSVersion)
                : uri;
            _credential = credential;
            if (!string.IsNullOrEmpty(configurationName))
                ConfigurationName = configurationName;
        }

        // The engine assigns these while it builds pools and sessions; keep what it sets.
        private string _computerName;
        public override string ComputerName { get => _computerName ?? Uri.Host; set => _computerName = value; }
        public override PSCredential Credential { get => _credential; set => _credential = value; }
        public override AuthenticationMechanism AuthenticationMechanism
        {
            get => _auth;
            set
            {
                if (value == AuthenticationMechanism.Default)
                    value = AuthenticationMechanism.Basic;
                if (value != AuthenticationMechanism.Basic && value != AuthenticationMechanism.Negotiate &&
                    value != AuthenticationMechanism.Kerberos)
                    throw new NotSupportedException("this client speaks Basic, Negotiate (NTLM) and Kerberos only");
                _auth = value;
            }
        }
        public override string CertificateThumbprint { get; set; }

        public string ResourceUri => ConfigurationName.StartsWith("http", StringComparison.OrdinalIgnoreCase)
            ? ConfigurationName : "http://schemas.microsoft.com/powershell/" + ConfigurationName;

        public override RunspaceConnectionInfo Clone()
        {
            var c = new WinrmdConnectionInfo(Uri, _credential, ConfigurationName)
            {
                SkipCertificateCheck = SkipCertificateCheck,
                ReceiveTimeoutSeconds = ReceiveTimeoutSeconds,
                TerminateOnClose = TerminateOnClose,
                SendCommandId = SendCommandId,
                AuthenticationMechanism = AuthenticationMechanism,
                OpenTimeout = OpenTimeout,
                OperationTimeout = OperationTimeout,
                CancelTimeout = CancelTimeout,
            };
            return c;
        }

        public override BaseClientSessionTransportManager CreateClientSessionTransportManager(
            Guid instanceId, string sessionName, PSRemotingCryptoHelper cryptoHelper)
            => new WinrmdSessionTransport(this, instanceId, cryptoHelper);
    }

    /// <summary>A WS-Man fault; Code is the WSManFault code (e.g. 2150858793 = timed out).</summary>
    public sealed class WsmanFaultException : Exception
    {
        public long Code { get; }
        public WsmanFaultException(long code, string message) : base(message) { Code = code; }
    }

    /// <summary>SOAP over HTTP(S) with Basic or Negotiate: builds the envelopes Windows sends.</summary>
    internal sealed class WsmanHttp : IDisposable
    {
        public const string NsRsp = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
        public const string ActShell = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/";
        public const string ActCreate = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
        public const string ActDelete = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
        public const long FaultTimedOut = 2150858793;
        public const long FaultShellDisconnected = 2150859204;

        private readonly HttpClient _http;
        private readonly WinrmdConnectionInfo _ci;
        private readonly string _authHeader;
        private readonly NegotiateChannels _nego;       /* null with Basic */
        private readonly string _sessionId = "uuid:" + Guid.NewGuid().ToString().ToUpperInvariant();

        public WsmanHttp(WinrmdConnectionInfo ci)
        {
            _ci = ci;
            var h = new SocketsHttpHandler
            {
                // One parked Receive per pipeline plus the pool's, plus Sends and Signals.
                MaxConnectionsPerServer = 256,
                PooledConnectionIdleTimeout = TimeSpan.FromSeconds(20),
            };
            if (ci.SkipCertificateCheck)
                h.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
            _http = new HttpClient(h) { Timeout = TimeSpan.FromSeconds(ci.ReceiveTimeoutSeconds + 120) };
            var net = ci.Credential.GetNetworkCredential();
            string user = string.IsNullOrEmpty(net.Domain) ? net.UserName : net.Domain + "\\" + net.UserName;
            _authHeader = Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + net.Password));
            if (ci.AuthenticationMechanism == AuthenticationMechanism.Negotiate ||
                ci.AuthenticationMechanism == AuthenticationMechanism.Kerberos)
                _nego = new NegotiateChannels(ci.Uri, net,
                    ci.AuthenticationMechanism == AuthenticationMechanism.Kerberos, ci.SkipCertificateCheck, _http.Timeout);
        }

        public void Dispose()
        {
            _nego?.Dispose();
            _http.Dispose();
        }

        private async Task<(int status, string text)> PostBasic(string soap, CancellationToken ct)
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, _ci.Uri);
            req.Headers.TryAddWithoutValidation("Authorization", "Basic " + _authHeader);
            req.Content = new StringContent(soap, new UTF8Encoding(false));
            req.Content.Headers.Remove("Content-Type");
            req.Content.Headers.TryAddWithoutValidation("Content-Type", "application/soap+xml;charset=UTF-8");
            using var resp = await _http.SendAsync(req, ct).ConfigureAwait(false);
            return ((int)resp.StatusCode, await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
        }

        private static string Esc(string s) => System.Security.SecurityElement.Escape(s);

        public async Task<XDocument> Call(string action, string shellId, string body,
            int operationTimeoutSec = 60, string options = null, CancellationToken ct = default)
        {
            var sb = new StringBuilder(512 + body.Length);
            sb.Append("<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"")
              .Append(" xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\"")
              .Append(" xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"")
              .Append(" xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\"")
              .Append(" xmlns:rsp=\"").Append(NsRsp).Append("\"><s:Header>")
              .Append("<a:To>").Append(Esc(_ci.Uri.ToString())).Append("</a:To>")
              .Append("<w:ResourceURI s:mustUnderstand=\"true\">").Append(Esc(_ci.ResourceUri)).Append("</w:ResourceURI>")
              .Append("<a:ReplyTo><a:Address s:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>")
              .Append("<a:Action s:mustUnderstand=\"true\">").Append(action).Append("</a:Action>")
              .Append("<w:MaxEnvelopeSize s:mustUnderstand=\"true\">512000</w:MaxEnvelopeSize>")
              .Append("<a:MessageID>uuid:").Append(Guid.NewGuid().ToString().ToUpperInvariant()).Append("</a:MessageID>")
              .Append("<w:Locale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>")
              .Append("<p:DataLocale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>")
              .Append("<p:SessionId s:mustUnderstand=\"false\">").Append(_sessionId).Append("</p:SessionId>")
              .Append("<w:OperationTimeout>PT").Append(operationTimeoutSec).Append(".000S</w:OperationTimeout>");
            if (shellId != null)
                sb.Append("<w:SelectorSet><w:Selector Name=\"ShellId\">").Append(Esc(shellId)).Append("</w:Selector></w:SelectorSet>");
            if (options != null)
                sb.Append("<w:OptionSet s:mustUnderstand=\"true\">").Append(options).Append("</w:OptionSet>");
            sb.Append("</s:Header><s:Body>").Append(body).Append("</s:Body></s:Envelope>");

            var (status, text) = _nego != null
                ? await _nego.PostAsync(sb.ToString(), ct).ConfigureAwait(false)
                : await PostBasic(sb.ToString(), ct).ConfigureAwait(false);
            XDocument doc = null;
            if (text.Length > 0)
            {
                try { doc = XDocument.Parse(text); } catch (System.Xml.XmlException) { doc = null; }
            }
            if (status >= 200 && status < 300 && doc != null)
                return doc;
            if (doc != null)
            {
                var wf = doc.Descendants().FirstOrDefault(e => e.Name.LocalName == "WSManFault");
                long code = 0;
                if (wf?.Attribute("Code") != null)
                    long.TryParse(wf.Attribute("Code").Value, out code);
                string msg = doc.Descendants().FirstOrDefault(e => e.Name.LocalName == "Message")?.Value
                    ?? doc.Descendants().FirstOrDefault(e => e.Name.LocalName == "Text")?.Value ?? "fault";
                throw new WsmanFaultException(code, string.Format("WS-Man fault {0} on {1}: {2}",
                    code, action.Substring(action.LastIndexOf('/') + 1), msg.Trim()));
            }
            throw new IOException(string.Format("HTTP {0} on {1}", status, action));
        }
    }

    /// <summary>The transport manager the engine drives; see the file banner.</summary>
    internal sealed class WinrmdSessionTransport : ClientSessionTransportManagerBase
    {
        private const uint MsgInitRunspacePool = 0x00010004;
        private const uint MsgCreatePipeline = 0x00021006;
        // Enter-PSSession and implicit remoting start a pipeline with this instead.
        private const uint MsgGetCommandMetadata = 0x0002100A;
        // Acks are given at once while a target has less than this unsent, so
        // the engine keeps fragmenting while earlier input is on the wire;
        // past it the ack waits for the Send (the engine's own flow control).
        private const int PendingLimit = 1 << 20;
        private const int SendBatchLimit = 300 * 1024;
        // A CREATE_PIPELINE larger than this (Copy-Item -ToSession's helper
        // script) goes as Windows sends it: its first fragments in the
        // Command's Arguments, the rest in Sends.
        private const int CommandArgsLimit = 200 * 1024;

        private sealed class Target
        {
            public Guid Id;
            public bool IsPool;
            public readonly MemoryStream CreateBuf = new MemoryStream();
            public uint CurType;
            public bool CreateSent;
            public readonly TaskCompletionSource<bool> Created =
                new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            public readonly List<(bool pr, byte[] data)> Pending = new List<(bool, byte[])>();
            public long PendingBytes;
            public bool FlushScheduled, AckOwed;
            public volatile bool Closed;
            public Task Chain = Task.CompletedTask;
            /// <summary>The WS-Man CommandId: the pipeline id, or what the server chose.</summary>
            public string CommandId;
        }

        private readonly WinrmdConnectionInfo _ci;
        private readonly Guid _poolId;
        private readonly WsmanHttp _ws;
        private readonly Target _pool;
        private readonly Dictionary<Guid, Target> _cmds = new Dictionary<Guid, Target>();
        private readonly CancellationTokenSource _cts = new CancellationTokenSource();
        private volatile string _shellId;
        private volatile bool _closing;
        private int _cleaned;
        // Disconnect/Reconnect on the wire, under the engine (see WinrmdWire).
        private volatile TaskCompletionSource _reconnected;

        /// <summary>The transport of the last pool this process created, for WinrmdWire.</summary>
        internal static WinrmdSessionTransport Last { get; private set; }

        internal WinrmdSessionTransport(WinrmdConnectionInfo ci, Guid runspaceId, PSRemotingCryptoHelper crypto)
            : base(runspaceId, crypto)
        {
            _ci = ci;
            _poolId = runspaceId;
            _ws = new WsmanHttp(ci);
            _pool = new Target { Id = Guid.Empty, IsPool = true };
            Last = this;
        }

        /// <summary>
        /// WS-Man Disconnect: the server keeps the runspace and its output, and
        /// fails the parked Receives, which then wait for Reconnect.
        /// </summary>
        internal void DisconnectWire()
        {
            _reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _ws.Call(WsmanHttp.ActShell + "Disconnect", _shellId, "<rsp:Disconnect/>", 60, null, _cts.Token)
                .GetAwaiter().GetResult();
        }

        /// <summary>WS-Man Reconnect, then the Receives go on where they stopped.</summary>
        internal void ReconnectWire()
        {
            _ws.Call(WsmanHttp.ActShell + "Reconnect", _shellId, "<rsp:Reconnect/>", 60, null, _cts.Token)
                .GetAwaiter().GetResult();
            var r = _reconnected;
            _reconnected = null;
            r?.TrySetResult();
        }

        public override void CreateAsync()
        {
            SetMessageWriter(new PacketWriter(this));
            // SESSION_CAPABILITY and INIT_RUNSPACEPOOL are already queued: start them flowing.
            SendOneItem();
        }

        protected override void CleanupConnection()
        {
            if (Interlocked.Exchange(ref _cleaned, 1) != 0)
                return;
            _closing = true;
            _cts.Cancel();
            DisposeMessageQueue();
            _ws.Dispose();
        }

        protected override void Dispose(bool isDisposing)
        {
            base.Dispose(isDisposing);
            if (isDisposing)
                CleanupConnection();
        }

        // ---- engine -> wire --------------------------------------------------

        /// <summary>Receives the engine's packets, one per WriteLine.</summary>
        private sealed class PacketWriter : TextWriter
        {
            private readonly WinrmdSessionTransport _t;
            private readonly StringBuilder _line = new StringBuilder();
            public PacketWriter(WinrmdSessionTransport t) { _t = t; }
            public override Encoding Encoding => Encoding.UTF8;
            public override void Write(char value)
            {
                lock (_line)
                {
                    if (value == '\n') { Flush1(); return; }
                    _line.Append(value);
                }
            }
            public override void Write(string value)
            {
                if (value == null) return;
                lock (_line)
                {
                    foreach (char ch in value)
                    {
                        if (ch == '\n') Flush1(); else _line.Append(ch);
                    }
                }
            }
            public override void WriteLine(string value)
            {
                lock (_line)
                {
                    _line.Append(value);
                    Flush1();
                }
            }
            private void Flush1()
            {
                string s = _line.ToString().TrimEnd('\r');
                _line.Clear();
                if (s.Length > 0)
                    _t.OnPacket(s);
            }
        }

        private static readonly bool TracePackets = Environment.GetEnvironmentVariable("WINRMD_CLIENT_TRACE") == "2";

        private void Emit(string packet)
        {
            if (TracePackets)
                Console.Error.WriteLine("winrmd-client: <- {0}", packet.Length > 120 ? packet.Substring(0, 120) : packet);
            HandleOutputDataReceived(packet);
        }

        private static string G(Guid g) => g.ToString();

        private static readonly bool Trace = Environment.GetEnvironmentVariable("WINRMD_CLIENT_TRACE") is "1" or "2";

        private void Fail(string what, Exception e)
        {
            if (Trace)
                Console.Error.WriteLine("winrmd-client: {0} failed{1}: {2}", what, _closing ? " while closing" : "", e);
            if (_closing)
                return;
            HandleErrorDataReceived(what + ": " + (e is AggregateException a ? a.InnerException : e).Message);
        }

        private Target Find(Guid g)
        {
            if (g == Guid.Empty) return _pool;
            lock (_cmds)
            {
                _cmds.TryGetValue(g, out var t);
                return t;
            }
        }

        /// <summary>Runs network operations of one target strictly in order.</summary>
        private void Chain(Target t, Func<Task> op)
        {
            lock (t)
            {
                t.Chain = t.Chain.ContinueWith(_ => op(), CancellationToken.None,
                    TaskContinuationOptions.None, TaskScheduler.Default).Unwrap();
            }
        }

        internal void OnPacket(string line)
        {
            if (TracePackets)
                Console.Error.WriteLine("winrmd-client: -> {0}", line.Length > 120 ? line.Substring(0, 120) : line);
            XElement x = XElement.Parse(line);
            Guid g = Guid.Parse((string)x.Attribute("PSGuid"));
            switch (x.Name.LocalName)
            {
                case "Data":
                    OnData(g, (string)x.Attribute("Stream") == "PromptResponse", Convert.FromBase64String(x.Value));
                    break;
                case "Command":
                    lock (_cmds)
                        _cmds[g] = new Target { Id = g, CommandId = g.ToString().ToUpperInvariant() };
                    // The engine then sends CREATE_PIPELINE as Data; that becomes the WS-Man Command.
                    Emit("<CommandAck PSGuid='" + G(g) + "' />");
                    break;
                case "Signal":
                    OnSignal(g);
                    break;
                case "Close":
                    if (g == Guid.Empty) OnClosePool(); else OnCloseCommand(g);
                    break;
                default:
                    throw new InvalidDataException("unexpected packet from the engine: " + x.Name.LocalName);
            }
        }

        /// <summary>
        /// True when the fragments in data end a message of type want: the
        /// first complete message of a target is what Create or Command carries.
        /// </summary>
        private static bool EndsMessage(Target t, byte[] data, uint want, uint orWant = 0)
        {
            bool done = false;
            int p = 0;
            while (p + 21 <= data.Length)
            {
                byte flags = data[p + 16];
                int blen = (data[p + 17] << 24) | (data[p + 18] << 16) | (data[p + 19] << 8) | data[p + 20];
                int blob = p + 21;
                if ((flags & 1) != 0 && blob + 8 <= data.Length)
                    t.CurType = BitConverter.ToUInt32(data, blob + 4);
                if ((flags & 2) != 0 && (t.CurType == want || (orWant != 0 && t.CurType == orWant)))
                    done = true;
                p = blob + blen;
            }
            return done;
        }

        private void OnData(Guid g, bool pr, byte[] data)
        {
            Target t = Find(g);
            if (t == null)
                return; // a pipeline already closed: the engine drops its data too
            bool ackNow = true;
            lock (t)
            {
                if (!t.CreateSent)
                {
                    t.CreateBuf.Write(data, 0, data.Length);
                    if (t.IsPool ? EndsMessage(t, data, MsgInitRunspacePool)
                        : EndsMessage(t, data, MsgCreatePipeline, MsgGetCommandMetadata)
                          || t.CreateBuf.Length >= CommandArgsLimit)
                    {
                        t.CreateSent = true;
                        byte[] payload = t.CreateBuf.ToArray();
                        Chain(t, () => t.IsPool ? CreateShell(payload) : CreateCommand(t, payload));
                    }
                }
                else
                {
                    t.Pending.Add((pr, data));
                    t.PendingBytes += data.Length;
                    if (!t.FlushScheduled)
                    {
                        t.FlushScheduled = true;
                        Chain(t, () => Flush(t));
                    }
                    if (t.PendingBytes > PendingLimit)
                    {
                        t.AckOwed = true;
                        ackNow = false;
                    }
                }
            }
            if (ackNow)
                Emit("<DataAck PSGuid='" + G(g) + "' />");
        }

        private async Task CreateShell(byte[] payload)
        {
            string body = "<rsp:Shell ShellId=\"" + _poolId.ToString().ToUpperInvariant() + "\">"
                + "<rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams>"
                + "<creationXml xmlns=\"http://schemas.microsoft.com/powershell\">"
                + Convert.ToBase64String(payload) + "</creationXml></rsp:Shell>";
            const string opts = "<w:Option Name=\"protocolversion\" MustComply=\"true\">2.3</w:Option>";
            try
            {
                XDocument d = await _ws.Call(WsmanHttp.ActCreate, null, body, 60, opts, _cts.Token).ConfigureAwait(false);
                XNamespace rsp = WsmanHttp.NsRsp;
                string id = d.Descendants(rsp + "ShellId").FirstOrDefault()?.Value
                    ?? d.Descendants().FirstOrDefault(e => e.Name.LocalName == "Selector"
                        && (string)e.Attribute("Name") == "ShellId")?.Value;
                if (string.IsNullOrEmpty(id))
                    throw new InvalidDataException("CreateResponse carries no ShellId");
                _shellId = id.Trim();
                WinrmdConnectionInfo.LastShellId = _shellId;
                _pool.Created.TrySetResult(true);
                _ = Task.Run(() => ReceiveLoop(_pool));
            }
            catch (Exception e)
            {
                _pool.Created.TrySetResult(false);
                Fail("Create", e);
            }
        }

        private async Task CreateCommand(Target t, byte[] payload)
        {
            try
            {
                if (!await _pool.Created.Task.ConfigureAwait(false))
                    throw new IOException("the shell was not created");
                string body = "<rsp:CommandLine" + (_ci.SendCommandId ? " CommandId=\"" + t.CommandId + "\"" : "")
                    + "><rsp:Command></rsp:Command>"
                    + "<rsp:Arguments>" + Convert.ToBase64String(payload) + "</rsp:Arguments></rsp:CommandLine>";
                XDocument d = await _ws.Call(WsmanHttp.ActShell + "Command", _shellId, body, 60, null, _cts.Token).ConfigureAwait(false);
                string id = d.Descendants(XName.Get("CommandId", WsmanHttp.NsRsp)).FirstOrDefault()?.Value?.Trim();
                if (string.IsNullOrEmpty(id))
                    throw new InvalidDataException("CommandResponse carries no CommandId");
                if (_ci.SendCommandId && !string.Equals(id, t.CommandId, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException("the server answered CommandId " + id + " for " + t.CommandId);
                t.CommandId = id;
                t.Created.TrySetResult(true);
                _ = Task.Run(() => ReceiveLoop(t));
            }
            catch (Exception e)
            {
                t.Created.TrySetResult(false);
                Fail("Command", e);
            }
        }

        private async Task Flush(Target t)
        {
            List<(bool pr, byte[] data)> items;
            bool owed;
            lock (t)
            {
                items = new List<(bool, byte[])>(t.Pending);
                t.Pending.Clear();
                t.PendingBytes = 0;
                t.FlushScheduled = false;
                owed = t.AckOwed;
                t.AckOwed = false;
            }
            try
            {
                if (!t.Closed && await t.Created.Task.ConfigureAwait(false))
                {
                    // Consecutive chunks of one stream share one rsp:Stream, as Windows
                    // sends them; Sends stay well under the 500 KB envelope.
                    int i = 0;
                    while (i < items.Count)
                    {
                        var sb = new StringBuilder("<rsp:Send>");
                        int size = 0;
                        while (i < items.Count && size < SendBatchLimit)
                        {
                            bool pr = items[i].pr;
                            var chunk = new MemoryStream();
                            while (i < items.Count && items[i].pr == pr && size < SendBatchLimit)
                            {
                                chunk.Write(items[i].data, 0, items[i].data.Length);
                                size += items[i].data.Length;
                                i++;
                            }
                            sb.Append("<rsp:Stream Name=\"").Append(pr ? "pr" : "stdin").Append('"');
                            if (!t.IsPool)
                                sb.Append(" CommandId=\"").Append(t.CommandId).Append('"');
                            sb.Append('>').Append(Convert.ToBase64String(chunk.ToArray())).Append("</rsp:Stream>");
                        }
                        sb.Append("</rsp:Send>");
                        await _ws.Call(WsmanHttp.ActShell + "Send", _shellId, sb.ToString(), 60, null, _cts.Token).ConfigureAwait(false);
                    }
                }
            }
            catch (Exception e)
            {
                if (!t.Closed)
                    Fail("Send", e);
            }
            if (owed)
                Emit("<DataAck PSGuid='" + G(t.Id) + "' />");
        }

        private void OnSignal(Guid g)
        {
            Target t = Find(g);
            _ = Task.Run(async () =>
            {
                try
                {
                    if (t != null && !_closing && await t.Created.Task.ConfigureAwait(false) && !t.Closed)
                        await Signal(t, "powershell/signal/crtl_c").ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    Fail("Signal", e);
                }
                // Acked even when it failed: the engine waits for the ack before it
                // completes a stop (Invoke-Command's Dispose waits for that).
                Emit("<SignalAck PSGuid='" + G(g) + "' />");
            });
        }

        private Task<XDocument> Signal(Target t, string code)
        {
            string body = "<rsp:Signal CommandId=\"" + t.CommandId + "\"><rsp:Code>" + code + "</rsp:Code></rsp:Signal>";
            return _ws.Call(WsmanHttp.ActShell + "Signal", _shellId, body, 60, null, _cts.Token);
        }

        private void OnCloseCommand(Guid g)
        {
            Target t = Find(g);
            if (t == null)
            {
                Emit("<CloseAck PSGuid='" + G(g) + "' />");
                return;
            }
            // After the pipeline's pending Sends, like WSManCloseCommand.
            Chain(t, async () =>
            {
                bool created = t.CreateSent && await t.Created.Task.ConfigureAwait(false);
                t.Closed = true;
                if (created && _ci.TerminateOnClose && !_closing)
                {
                    try
                    {
                        await Signal(t, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate").ConfigureAwait(false);
                    }
                    catch (WsmanFaultException)
                    {
                        // The server may already have forgotten a finished pipeline.
                    }
                    catch (Exception e)
                    {
                        Fail("Signal terminate", e);
                    }
                }
                lock (_cmds)
                    _cmds.Remove(g);
                Emit("<CloseAck PSGuid='" + G(g) + "' />");
            });
        }

        private void OnClosePool()
        {
            _ = Task.Run(async () =>
            {
                _closing = true;
                try
                {
                    Task chain;
                    lock (_pool)
                        chain = _pool.Chain;
                    await chain.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                    if (_shellId != null)
                        await _ws.Call(WsmanHttp.ActDelete, _shellId, "", 60).ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Closing anyway; the engine only waits for the ack.
                }
                _pool.Closed = true;
                // The shell is gone and the engine drops our message queues after the
                // pool's CloseAck, so a pipeline still open (say, after a transport
                // error during its input) would wait for its CloseAck forever and
                // Invoke-Command with it: close them all first.
                List<Guid> open;
                lock (_cmds)
                {
                    open = _cmds.Keys.ToList();
                    foreach (var t in _cmds.Values)
                        t.Closed = true;
                    _cmds.Clear();
                }
                foreach (Guid g in open)
                    Emit("<CloseAck PSGuid='" + G(g) + "' />");
                Emit("<CloseAck PSGuid='" + G(Guid.Empty) + "' />");
            });
        }

        // ---- wire -> engine --------------------------------------------------

        private async Task ReceiveLoop(Target t)
        {
            XNamespace rsp = WsmanHttp.NsRsp;
            string ds = t.IsPool ? "<rsp:DesiredStream>stdout</rsp:DesiredStream>"
                : "<rsp:DesiredStream CommandId=\"" + t.CommandId + "\">stdout</rsp:DesiredStream>";
            string body = "<rsp:Receive>" + ds + "</rsp:Receive>";
            const string opts = "<w:Option Name=\"WSMAN_CMDSHELL_OPTION_KEEPALIVE\">TRUE</w:Option>";
            while (!_closing && !t.Closed)
            {
                XDocument d;
                try
                {
                    d = await _ws.Call(WsmanHttp.ActShell + "Receive", _shellId, body,
                        _ci.ReceiveTimeoutSeconds, opts, _cts.Token).ConfigureAwait(false);
                }
                catch (WsmanFaultException f) when (f.Code == WsmanHttp.FaultTimedOut)
                {
                    continue;
                }
                catch (WsmanFaultException f) when (f.Code == WsmanHttp.FaultShellDisconnected && _reconnected != null)
                {
                    await _reconnected.Task.ConfigureAwait(false);
                    continue;
                }
                catch (Exception e)
                {
                    if (!_closing && !t.Closed)
                        Fail("Receive", e);
                    return;
                }
                foreach (XElement s in d.Descendants(rsp + "Stream"))
                {
                    string cid = (string)s.Attribute("CommandId");
                    if (t.IsPool ? cid != null : !string.Equals(cid, t.CommandId, StringComparison.OrdinalIgnoreCase))
                    {
                        Fail("Receive", new InvalidDataException("a stream for CommandId " + (cid ?? "(none)")
                            + " in the Receive for " + (t.IsPool ? "the pool" : t.CommandId)));
                        return;
                    }
                    Guid g = t.Id;
                    string b64 = s.Value.Trim();
                    if (b64.Length > 0)
                        Emit("<Data Stream='Default' PSGuid='" + G(g) + "'>" + b64 + "</Data>");
                }
                XElement st = d.Descendants(rsp + "CommandState").FirstOrDefault();
                if (st != null && ((string)st.Attribute("State") ?? "").EndsWith("/Done", StringComparison.Ordinal))
                    return;
            }
        }
    }

    /// <summary>
    /// Disconnect and Reconnect of the last pool's shell on the wire, with the
    /// engine unaware (its own Disconnect-PSSession hooks are internal to
    /// System.Management.Automation): what a client that loses its network
    /// for a while and comes back does.
    /// </summary>
    public static class WinrmdWire
    {
        public static void Disconnect() => (WinrmdSessionTransport.Last
            ?? throw new InvalidOperationException("no pool yet")).DisconnectWire();
        public static void Reconnect() => (WinrmdSessionTransport.Last
            ?? throw new InvalidOperationException("no pool yet")).ReconnectWire();
    }

    /// <summary>Entry points for WinrmdClient.psm1.</summary>
    public static class WinrmdSession
    {
        /// <summary>An opened remote runspace wrapped as a PSSession (Invoke-Command -Session takes it).</summary>
        public static PSSession Open(WinrmdConnectionInfo ci, System.Management.Automation.Host.PSHost host, PSCmdlet cmdlet)
        {
            Runspace rs = RunspaceFactory.CreateRunspace(ci, host, TypeTable.LoadDefaultTypeFiles());
            rs.Open();
            return PSSession.Create(rs, "WSMan", cmdlet);
        }

        /// <summary>An opened runspace pool with up to max runspaces, for concurrent pipelines.</summary>
        public static RunspacePool OpenPool(WinrmdConnectionInfo ci, int min, int max, System.Management.Automation.Host.PSHost host)
        {
            // RunspaceFactory.CreateRunspacePool refuses connection types it does
            // not know (ConnectionFactory.cs) and then calls this constructor; we
            // call it directly, so the pool is the engine's own remote pool.
            var ctor = typeof(RunspacePool).GetConstructor(
                System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic, null,
                new[] { typeof(int), typeof(int), typeof(TypeTable), typeof(System.Management.Automation.Host.PSHost),
                        typeof(PSPrimitiveDictionary), typeof(RunspaceConnectionInfo), typeof(string) }, null)
                ?? throw new MissingMethodException("RunspacePool(int, int, TypeTable, PSHost, PSPrimitiveDictionary, RunspaceConnectionInfo, string)");
            var pool = (RunspacePool)ctor.Invoke(new object[] { min, max, TypeTable.LoadDefaultTypeFiles(), host, null, ci, null });
            pool.Open();
            return pool;
        }
    }
}
