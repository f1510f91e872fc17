// WinrmdNegotiate.cs - Negotiate logins (NTLM, or Kerberos in SPNEGO) and
// WinRM message encryption for the test client (runs inside the test's pwsh
// process).
//
// As Windows' WinRM client does over HTTP: each TCP connection logs in with
// its own exchange (Authorization: Negotiate, on empty POSTs), and from then
// on every request on that connection is sealed with that connection's keys
// in a multipart/encrypted body (application/HTTP-SPNEGO-session-encrypted;
// MS-WSMV 2.2.9.1), and so is every answer.  Over HTTPS the login is the
// same and bodies stay plain.  The security itself is .NET's
// NegotiateAuthentication: its managed NTLM, or MIT GSSAPI's SPNEGO and
// Kerberos with the ticket cache (KRB5CCNAME) when no password is given, so
// implementations independent of the server's do the crypto.
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
        private readonly bool _kerberos;
        private NegotiateAuthentication _auth;

        public NegotiateChannel(Uri uri, NetworkCredential cred, bool kerberos, bool skipCertificateCheck,
            TimeSpan timeout)
        {
            _uri = uri;
            _cred = cred;
            _kerberos = kerberos;
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
                // SPNEGO through GSSAPI offers Kerberos only here (no gss-ntlmssp).
                Package = _kerberos ? "Negotiate" : "NTLM",
                Credential = _kerberos && string.IsNullOrEmpty(_cred.Password)
                    ? CredentialCache.DefaultNetworkCredentials : _cred,
                TargetName = "HTTP/" + _uri.Host,
                RequiredProtectionLevel = ProtectionLevel.EncryptAndSign,
            });
            byte[] token = _auth.GetOutgoingBlob(ReadOnlySpan<byte>.Empty, out var st);
            while (true)
            {
                if (token == null || (st != NegotiateAuthenticationStatusCode.ContinueNeeded &&
                    st != NegotiateAuthenticationStatusCode.Completed))
                    throw new IOException("Negotiate: " + st);
                using var req = new HttpRequestMessage(HttpMethod.Post, _uri) { Content = new ByteArrayContent(Array.Empty<byte>()) };
                req.Headers.TryAddWithoutValidation("Authorization", "Negotiate " + Convert.ToBase64String(token));
                using var resp = await _http.SendAsync(req, ct).ConfigureAwait(false);
                string answer = resp.Headers.WwwAuthenticate
                    .Where(a => string.Equals(a.Scheme, "Negotiate", StringComparison.OrdinalIgnoreCase))
                    .Select(a => a.Parameter).FirstOrDefault(p => !string.IsNullOrEmpty(p));
                if (resp.IsSuccessStatusCode)
                {
                    // Kerberos: the final 200 carries the server's half of mutual authentication.
                    if (answer != null && !_auth.IsAuthenticated)
                        _auth.GetOutgoingBlob(Convert.FromBase64String(answer), out st);
                    if (!_auth.IsAuthenticated)
                        throw new IOException("Negotiate: the server accepted an incomplete login (" + st + ")");
                    return;
                }
                if ((int)resp.StatusCode != 401 || answer == null || st == NegotiateAuthenticationStatusCode.Completed)
                    throw new IOException(string.Format("Negotiate login refused: HTTP {0}", (int)resp.StatusCode));
                token = _auth.GetOutgoingBlob(Convert.FromBase64String(answer), out st);
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
                throw new IOException("seal: " + st);
            byte[] token = w.WrittenSpan.ToArray();
            int headerLength = HeaderFirst(token, plain.Length);
            using var ms = new MemoryStream();
            void Ascii(string s) { var b = Encoding.ASCII.GetBytes(s); ms.Write(b, 0, b.Length); }
            Ascii("--" + Boundary + "\r\n\tContent-Type: " + Protocol + "\r\n");
            Ascii("\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + plain.Length + "\r\n");
            ms.Write(OctetHeader);
            ms.Write(BitConverter.GetBytes(headerLength));
            ms.Write(token);
            ms.Write(EndBoundary);
            return ms.ToArray();
        }

        /*
         * WinRM sends a wrap token as <header><data>, the data exactly as long
         * as the plain text.  NTLM's token already is: a 16-byte signature,
         * then the sealed data.  A Kerberos (RFC 4121) token from gss_wrap is
         * header(16) | E(confounder | data | header copy) | checksum, with
         * RRC 0; Windows rotates the part after the header right by the bytes
         * that follow the data (RRC), so the header part ends just where the
         * data begins.  The receiver undoes any rotation, so this is legal.
         * Returns the header length after rearranging token in place.
         */
        private static int HeaderFirst(byte[] token, int plainLength)
        {
            int extra = token.Length - plainLength;
            if (token.Length >= 16 && token[0] == 0x05 && token[1] == 0x04)
            {
                const int confounder = 16;              // one AES block
                int rrc = extra - 16 - confounder;
                if (rrc < 0 || token[6] != 0 || token[7] != 0)
                    throw new IOException("unexpected Kerberos wrap token");
                var body = token.AsSpan(16).ToArray();
                body.AsSpan(body.Length - rrc).CopyTo(token.AsSpan(16));
                body.AsSpan(0, body.Length - rrc).CopyTo(token.AsSpan(16 + rrc));
                token[6] = (byte)(rrc >> 8);
                token[7] = (byte)rrc;
                return extra;
            }
            if (extra != 16)
                throw new IOException("unexpected NTLM wrap token");
            return extra;
        }

        private byte[] Unseal(byte[] body)
        {
            int at = body.AsSpan().IndexOf(OctetHeader);
            if (at < 0 || body.Length < at + OctetHeader.Length + 4 + EndBoundary.Length)
                throw new IOException("sealed answer without its octet-stream part");
            at += OctetHeader.Length;
            int hl = BitConverter.ToInt32(body, at);
            int end = body.Length - EndBoundary.Length;
            if (hl < 16 || !body.AsSpan(end).SequenceEqual(EndBoundary) || end < at + 4 + hl)
                throw new IOException("sealed answer is not framed as WinRM frames it");
            var w = new ArrayBufferWriter<byte>();
            var st = _auth.Unwrap(body.AsSpan(at + 4, end - at - 4), w, out bool encrypted);
            if (st != NegotiateAuthenticationStatusCode.Completed || !encrypted)
                throw new IOException("unseal: " + st);
            return w.WrittenSpan.ToArray();
        }
    }

    /// <summary>Channels for concurrent calls (a parked Receive holds one).</summary>
    internal sealed class NegotiateChannels : IDisposable
    {
        private readonly ConcurrentBag<NegotiateChannel> _idle = new ConcurrentBag<NegotiateChannel>();
        private readonly Uri _uri;
        private readonly NetworkCredential _cred;
        private readonly bool _kerberos;
        private readonly bool _skip;
        private readonly TimeSpan _timeout;

        public NegotiateChannels(Uri uri, NetworkCredential cred, bool kerberos, bool skipCertificateCheck,
            TimeSpan timeout)
        {
            _uri = uri;
            _cred = cred;
            _kerberos = kerberos;
            // NTLM: .NET's own, not gss-ntlmssp through GSSAPI (not installed).  Read
            // once per process, and it would make "Negotiate" managed SPNEGO, which
            // offers no Kerberos: so only in a process that uses NTLM.
            if (!kerberos)
                AppContext.SetSwitch("System.Net.Security.UseManagedNtlm", true);
            _skip = skipCertificateCheck;
            _timeout = timeout;
        }

        public async Task<(int status, string text)> PostAsync(string soap, CancellationToken ct)
        {
            if (!_idle.TryTake(out var ch))
                ch = new NegotiateChannel(_uri, _cred, _kerberos, _skip, _timeout);
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
