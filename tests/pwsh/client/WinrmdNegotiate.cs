// WinrmdNegotiate.cs - Negotiate (NTLM) logins and WinRM message encryption
// for the test client (runs inside the test's pwsh process).
//
// As Windows' WinRM client does over HTTP: each TCP connection logs in with
// its own NTLM exchange (Authorization: Negotiate, raw NTLMSSP tokens, on
// empty POSTs), and from then on every request on that connection is sealed
// with that connection's keys in a multipart/encrypted body
// (application/HTTP-SPNEGO-session-encrypted; MS-WSMV 2.2.9.1), and so is
// every answer.  Over HTTPS the login is the same and bodies stay plain.
// The NTLM itself is .NET's NegotiateAuthentication (its managed NTLM), so
// an implementation independent of the server's does the crypto.
using System;
using System.Buffers;
using System.Collections.Concurrent;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Winrmd.Client
{
    /// <summary>One connection with its own NTLM context.</summary>
    internal sealed class NegotiateChannel : IDisposable
    {
        private const string Boundary = "Encrypted Boundary";
        private const string Protocol = "application/HTTP-SPNEGO-session-encrypted";
        private static readonly byte[] OctetHeader = Encoding.ASCII.GetBytes(
            "--" + Boundary + "\r\n\tContent-Type: application/octet-stream\r\n");
        private static readonly byte[] EndBoundary = Encoding.ASCII.GetBytes("--" + Boundary + "--\r\n");

        private readonly HttpClient _http;
        private readonly Uri _uri;
        private readonly NetworkCredential _cred;
        private readonly bool _seal;
        private NegotiateAuthentication _auth;

        public NegotiateChannel(Uri uri, NetworkCredential cred, bool skipCertificateCheck, TimeSpan timeout)
        {
            _uri = uri;
            _cred = cred;
            _seal = uri.Scheme == Uri.UriSchemeHttp;
            var h = new SocketsHttpHandler
            {
                // The login belongs to the connection: exactly one, kept.
                MaxConnectionsPerServer = 1,
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            };
            if (skipCertificateCheck)
                h.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
            _http = new HttpClient(h) { Timeout = timeout };
        }

        public void Dispose()
        {
            _auth?.Dispose();
            _http.Dispose();
        }

        private async Task LoginAsync(CancellationToken ct)
        {
            _auth?.Dispose();
            _auth = new NegotiateAuthentication(new NegotiateAuthenticationClientOptions
            {
                Package = "NTLM",
                Credential = _cred,
                TargetName = "HTTP/" + _uri.Host,
                RequiredProtectionLevel = ProtectionLevel.EncryptAndSign,
            });
            byte[] token = _auth.GetOutgoingBlob(ReadOnlySpan<byte>.Empty, out var st);
            while (true)
            {
                if (st != NegotiateAuthenticationStatusCode.ContinueNeeded && st != NegotiateAuthenticationStatusCode.Completed)
                    throw new IOException("NTLM: " + st);
                using var req = new HttpRequestMessage(HttpMethod.Post, _uri) { Content = new ByteArrayContent(Array.Empty<byte>()) };
                req.Headers.TryAddWithoutValidation("Authorization", "Negotiate " + Convert.ToBase64String(token));
                using var resp = await _http.SendAsync(req, ct).ConfigureAwait(false);
                if (st == NegotiateAuthenticationStatusCode.Completed)
                {
                    if (!resp.IsSuccessStatusCode)
                        throw new IOException(string.Format("NTLM login refused: HTTP {0}", (int)resp.StatusCode));
                    return;
                }
                string challenge = resp.Headers.WwwAuthenticate
                    .Where(a => string.Equals(a.Scheme, "Negotiate", StringComparison.OrdinalIgnoreCase))
                    .Select(a => a.Parameter).FirstOrDefault(p => !string.IsNullOrEmpty(p));
                if (challenge == null)
                    throw new IOException(string.Format("NTLM: no challenge (HTTP {0})", (int)resp.StatusCode));
                token = _auth.GetOutgoingBlob(Convert.FromBase64String(challenge), out st);
            }
        }

        /// <summary>POST a SOAP envelope; the status and the (unsealed) answer.</summary>
        public async Task<(int status, string text)> PostAsync(string soap, CancellationToken ct)
        {
            for (int attempt = 0; ; attempt++)
            {
                if (_auth == null)
                    await LoginAsync(ct).ConfigureAwait(false);
                byte[] plain = Encoding.UTF8.GetBytes(soap);
                using var req = new HttpRequestMessage(HttpMethod.Post, _uri);
                if (_seal)
                {
                    req.Content = new ByteArrayContent(Seal(plain));
                    req.Content.Headers.TryAddWithoutValidation("Content-Type",
                        "multipart/encrypted;protocol=\"" + Protocol + "\";boundary=\"" + Boundary + "\"");
                }
                else
                {
                    req.Content = new ByteArrayContent(plain);
                    req.Content.Headers.TryAddWithoutValidation("Content-Type", "application/soap+xml;charset=UTF-8");
                }
                using var resp = await _http.SendAsync(req, ct).ConfigureAwait(false);
                if ((int)resp.StatusCode == 401 && attempt == 0)
                {
                    // A new connection under us (the old one was closed): log in again.
                    _auth.Dispose();
                    _auth = null;
                    continue;
                }
                byte[] body = await resp.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
                string type = resp.Content.Headers.ContentType?.MediaType ?? "";
                string text = type.Equals("multipart/encrypted", StringComparison.OrdinalIgnoreCase)
                    ? Encoding.UTF8.GetString(Unseal(body)) : Encoding.UTF8.GetString(body);
                return ((int)resp.StatusCode, text);
            }
        }

        private byte[] Seal(byte[] plain)
        {
            var w = new ArrayBufferWriter<byte>();
            var st = _auth.Wrap(plain, w, true, out bool encrypted);
            if (st != NegotiateAuthenticationStatusCode.Completed || !encrypted)
                throw new IOException("NTLM seal: " + st);
            // NTLM's wrap token is the 16-byte signature, then the sealed data.
            ReadOnlySpan<byte> token = w.WrittenSpan;
            using var ms = new MemoryStream();
            void Ascii(string s) { var b = Encoding.ASCII.GetBytes(s); ms.Write(b, 0, b.Length); }
            Ascii("--" + Boundary + "\r\n\tContent-Type: " + Protocol + "\r\n");
            Ascii("\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + plain.Length + "\r\n");
            ms.Write(OctetHeader);
            ms.Write(BitConverter.GetBytes(16));
            ms.Write(token);
            ms.Write(EndBoundary);
            return ms.ToArray();
        }

        private byte[] Unseal(byte[] body)
        {
            int at = body.AsSpan().IndexOf(OctetHeader);
            if (at < 0 || body.Length < at + OctetHeader.Length + 4 + EndBoundary.Length)
                throw new IOException("sealed answer without its octet-stream part");
            at += OctetHeader.Length;
            int hl = BitConverter.ToInt32(body, at);
            int end = body.Length - EndBoundary.Length;
            if (hl != 16 || !body.AsSpan(end).SequenceEqual(EndBoundary) || end < at + 4 + hl)
                throw new IOException("sealed answer is not framed as WinRM frames it");
            var w = new ArrayBufferWriter<byte>();
            var st = _auth.Unwrap(body.AsSpan(at + 4, end - at - 4), w, out bool encrypted);
            if (st != NegotiateAuthenticationStatusCode.Completed || !encrypted)
                throw new IOException("NTLM unseal: " + st);
            return w.WrittenSpan.ToArray();
        }
    }

    /// <summary>Channels for concurrent calls (a parked Receive holds one).</summary>
    internal sealed class NegotiateChannels : IDisposable
    {
        private readonly ConcurrentBag<NegotiateChannel> _idle = new ConcurrentBag<NegotiateChannel>();
        private readonly Uri _uri;
        private readonly NetworkCredential _cred;
        private readonly bool _skip;
        private readonly TimeSpan _timeout;

        static NegotiateChannels()
        {
            // .NET's own NTLM, not gss-ntlmssp through GSSAPI (not installed).
            AppContext.SetSwitch("System.Net.Security.UseManagedNtlm", true);
        }

        public NegotiateChannels(Uri uri, NetworkCredential cred, bool skipCertificateCheck, TimeSpan timeout)
        {
            _uri = uri;
            _cred = cred;
            _skip = skipCertificateCheck;
            _timeout = timeout;
        }

        public async Task<(int status, string text)> PostAsync(string soap, CancellationToken ct)
        {
            if (!_idle.TryTake(out var ch))
                ch = new NegotiateChannel(_uri, _cred, _skip, _timeout);
            (int, string) r;
            try
            {
                r = await ch.PostAsync(soap, ct).ConfigureAwait(false);
            }
            catch
            {
                // Its sequence numbers may now differ from the server's: never reuse it.
                ch.Dispose();
                throw;
            }
            _idle.Add(ch);
            return r;
        }

        public void Dispose()
        {
            while (_idle.TryTake(out var ch))
                ch.Dispose();
        }
    }
}
