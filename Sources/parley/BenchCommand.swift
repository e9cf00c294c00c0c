import Foundation

func runBench(_ arguments: [String]) -> Int32 {
    guard let scenario = arguments.first else {
        FileHandle.standardError.write(Data("\(BenchOptions.usage)\n".utf8))
        return 2
    }
    switch scenario {
    case "codec":
        var seconds = 2.0
        var json = false
        var only: String? = nil
        var i = 1
        while i < arguments.count {
            switch arguments[i] {
            case "--seconds" where i + 1 < arguments.count:
                guard let s = Double(arguments[i + 1]), s > 0 else {
                    FileHandle.standardError.write(Data("parley bench codec: --seconds wants a positive number\n".utf8))
                    return 2
                }
                seconds = s
                i += 2
            case "--only" where i + 1 < arguments.count:
                only = arguments[i + 1]
                i += 2
            case "--json":
                json = true
                i += 1
            default:
                FileHandle.standardError.write(Data("parley bench codec: unknown option '\(arguments[i])'\n".utf8))
                return 2
            }
        }
        return CodecBenchmark(secondsPerCase: seconds, only: only).run(json: json)
    default:
        do {
            let options = try BenchOptions.parse(arguments)
            return LoadGenerator(options: options).run()
        } catch {
            FileHandle.standardError.write(Data("parley bench: \(error)\n\n\(BenchOptions.usage)\n".utf8))
            return 2
        }
    }
}
