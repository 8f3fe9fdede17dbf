/// The release, as `uploader --version` prints it. debian/changelog's newest
/// entry carries the same version (a test keeps the two equal).
public enum UploaderVersion {
    public static let current = "0.8.0"
}
