// libFuzzer entry point; the harness itself is Fuzz/Harnesses/SMTPReplyHarness.swift
// (also replayed over the committed corpus by `swift test`).
import FuzzHarnesses

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzSMTPReply(data, size)
}
