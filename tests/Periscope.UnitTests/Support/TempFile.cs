namespace Periscope.UnitTests.Support;

/// <summary>A file under the temp folder that is deleted on dispose (memory sources are file-backed).</summary>
public sealed class TempFile : IDisposable
{
    public TempFile(byte[] content, string suffix = ".img")
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"periscope-test-{Guid.NewGuid():n}{suffix}");
        File.WriteAllBytes(Path, content);
    }

    public string Path { get; }
    public void Dispose() { try { File.Delete(Path); } catch (IOException) { } }
}
