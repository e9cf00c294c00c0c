/// The web client and the API description, built into the binary (SwiftPM embeds
/// `Web/` as byte arrays): nothing is read from disk or fetched at run time.
enum StaticFiles {
    struct File {
        let path: String
        let contentType: String
        let bytes: [UInt8]
    }

    static let all: [File] = [
        File(path: "/", contentType: "text/html; charset=utf-8", bytes: PackageResources.index_html),
        File(path: "/app.js", contentType: "text/javascript; charset=utf-8", bytes: PackageResources.app_js),
        File(path: "/mqtt.js", contentType: "text/javascript; charset=utf-8", bytes: PackageResources.mqtt_js),
        File(path: "/sw.js", contentType: "text/javascript; charset=utf-8", bytes: PackageResources.sw_js),
        File(path: "/app.css", contentType: "text/css; charset=utf-8", bytes: PackageResources.app_css),
        File(path: "/openapi.json", contentType: "application/json", bytes: PackageResources.openapi_json),
    ]
}
