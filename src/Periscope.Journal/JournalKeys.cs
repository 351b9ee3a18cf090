using System.Security.Cryptography;
using System.Text;
using Periscope.Memory;
using Periscope.Memory.Files;

namespace Periscope.Journal;

/// <summary>
/// The operator's ECDSA P-256 key that signs chain heads. The private half lives in a file outside the journal (PKCS#8
/// PEM, mode 0600); the public half (SubjectPublicKeyInfo PEM) is what `journal verify --pubkey` needs. Someone who
/// can rewrite the whole journal file can recompute the chain but cannot produce a head signature for it.
/// </summary>
public sealed class JournalSigningKey : IDisposable
{
    private readonly ECDsa _key;

    private JournalSigningKey(ECDsa key)
    {
        _key = key;
        KeyId = JournalPublicKey.IdOf(key);
    }

    /// <summary>SHA-256 of the public key's SubjectPublicKeyInfo: which key signed a head.</summary>
    public byte[] KeyId { get; }

    /// <summary>Makes a new key, writes the private half to <paramref name="privatePath"/> (0600, refusing to overwrite)
    /// and the public half to <paramref name="publicPath"/>.</summary>
    public static byte[] Generate(string privatePath, string publicPath)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new FileStream(privatePath, options))
        {
            file.Write(Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem() + "\n"));
            file.Flush(flushToDisk: true);
        }
        var publicOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        using (var file = new FileStream(publicPath, publicOptions))
        {
            file.Write(Encoding.ASCII.GetBytes(key.ExportSubjectPublicKeyInfoPem() + "\n"));
            file.Flush(flushToDisk: true);
        }
        return JournalPublicKey.IdOf(key);
    }

    public static JournalSigningKey Load(string path, IntrospectionLimits limits)
    {
        string pem = KeyFile.ReadPem(path, limits);
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(pem);
            if (key.KeySize != 256) throw new JournalFormatException($"{path}: a {key.KeySize}-bit key; journal keys are ECDSA P-256");
            key.SignData([0], HashAlgorithmName.SHA256); // a public-only PEM fails here, not at the first head
            return new JournalSigningKey(key);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            key.Dispose();
            throw new JournalFormatException($"{path}: not an ECDSA P-256 private key (PEM): {e.Message}", e);
        }
    }

    /// <summary>IEEE P1363 signature (r || s, 64 bytes) over SHA-256 of <paramref name="message"/>.</summary>
    public byte[] Sign(byte[] message) => _key.SignData(message, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    public void Dispose() => _key.Dispose();
}

/// <summary>The public half of a journal key, for verification.</summary>
public sealed class JournalPublicKey : IDisposable
{
    private readonly ECDsa _key;

    private JournalPublicKey(ECDsa key, string path)
    {
        _key = key;
        Path = path;
        KeyId = IdOf(key);
    }

    public string Path { get; }
    public byte[] KeyId { get; }

    public static JournalPublicKey Load(string path, IntrospectionLimits limits)
    {
        string pem = KeyFile.ReadPem(path, limits);
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(pem);
            if (key.KeySize != 256) throw new JournalFormatException($"{path}: a {key.KeySize}-bit key; journal keys are ECDSA P-256");
            return new JournalPublicKey(key, path);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            key.Dispose();
            throw new JournalFormatException($"{path}: not an ECDSA P-256 public key (PEM): {e.Message}", e);
        }
    }

    public bool Verify(byte[] message, byte[] signature) =>
        signature.Length == 64 && _key.VerifyData(message, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    internal static byte[] IdOf(ECDsa key) => SHA256.HashData(key.ExportSubjectPublicKeyInfo());

    public void Dispose() => _key.Dispose();
}

internal static class KeyFile
{
    /// <summary>The file as ASCII text, read through the non-blocking regular-file open and capped before reading.</summary>
    public static string ReadPem(string path, IntrospectionLimits limits)
    {
        byte[] bytes = DumpFile.ReadWholeIfAtMost(path, limits.MaxJournalKeyFileBytes, out ulong length)
            ?? throw new JournalFormatException($"{path}: {length} bytes, more than the limit of {limits.MaxJournalKeyFileBytes} bytes for a key file");
        int total = bytes.Length;
        int bad = bytes.AsSpan(0, total).IndexOfAnyExceptInRange((byte)0x09, (byte)0x7e);
        if (bad >= 0) throw new JournalFormatException($"{path}: at offset {bad}: byte 0x{bytes[bad]:x2} in what should be a PEM text key file");
        return Encoding.ASCII.GetString(bytes, 0, total);
    }
}
