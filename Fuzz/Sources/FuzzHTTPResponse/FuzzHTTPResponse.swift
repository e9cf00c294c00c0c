// libFuzzer entry point; the harness itself is Fuzz/Harnesses/HTTPResponseHarness.swift
// (also replayed over the committed corpus by `swift test`).
import FuzzHarnesses

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzHTTPResponse(data, size)
}
