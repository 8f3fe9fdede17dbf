import ArgumentParser
import UploaderCore

extension ConfigCommand {
    /// The key table (`ConfigKeys`) as the generated files need it:
    /// `scripts/lib/config-generate` and `scripts/lib/config-manpage.py` read it.
    struct Keys: ParsableCommand {
        enum Format: String, ExpressibleByArgument, CaseIterable {
            /// The example configuration (Config/uploader.toml).
            case example
            /// The per-key reference (docs/configuration-keys.md).
            case markdown
            /// Every section and key, for uploader.toml(5).
            case json
        }

        static let configuration = CommandConfiguration(
            abstract: "Print every configuration key: as the example file, as Markdown, or as JSON.",
            shouldDisplay: false)
        @Option(help: "example, markdown or json.") var format: Format = .example

        func run() throws {
            switch format {
            case .example: print(ConfigKeys.exampleFile(), terminator: "")
            case .markdown: print(ConfigKeys.markdown(), terminator: "")
            case .json: print(try ConfigKeys.json(), terminator: "")
            }
        }
    }
}
