/**
 * A base URL the client cannot use is a configuration error when the client is made (issue 13
 * item 7): before, `localhost:8000` (no `http://`) only failed at the first call, as a
 * "temporarily unavailable" network error.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { AppClient, ValidationError } from "../src/index.js";

const SECRET = "s".repeat(64);

describe("baseUrl", () => {
  for (const baseUrl of ["localhost:8000", "127.0.0.1:8000", "open.example.com", "ftp://open.example.com",
                         "https://", "https://open.example.com/?x=1", "https://open.example.com/#top"]) {
    test(`refuses ${JSON.stringify(baseUrl)} at construction, naming the field and an example`, () => {
      assert.throws(() => new AppClient({ appId: "a".repeat(32), secret: SECRET, baseUrl }), (error: unknown) => {
        assert.ok(error instanceof ValidationError);
        assert.equal(error.code, 40001);
        assert.equal(error.field, "baseUrl");
        assert.match(error.msg, /absolute http\(s\) URL, such as https:\/\/open\.example\.com/);
        assert.ok(error.msg.includes(JSON.stringify(baseUrl)));
        return true;
      });
    });
  }

  test("keeps a good one, without its trailing slash", () => {
    const cases: Array<[string, string]> = [
      ["http://127.0.0.1:8000/", "http://127.0.0.1:8000"],
      ["https://open.example.com/openplatform", "https://open.example.com/openplatform"],
    ];
    for (const [given, kept] of cases) {
      assert.equal(new AppClient({ appId: "a".repeat(32), secret: SECRET, baseUrl: given }).baseUrl, kept);
    }
  });
});
