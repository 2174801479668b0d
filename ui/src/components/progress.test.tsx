import { afterEach, describe, expect, it } from "vitest";
import { act, cleanup, render, screen } from "@testing-library/react";
import { ProgressPanel, ProgressProvider, useProgress } from "./progress";
import type { Result } from "../api";
import type { Progress } from "../types";

afterEach(cleanup);

const tick = (opId: string, done: number): Progress => ({
  opId,
  phase: "progress",
  path: "big.bin",
  fileDone: done,
  fileTotal: 100,
  overallDone: done,
  overallTotal: 100,
  filesDone: 0,
  filesTotal: 1,
});

const frame = () => new Promise((resolve) => setTimeout(resolve, 40));

describe("progress", () => {
  it("updates the panel on every tick without re-rendering the screen that started the operation", async () => {
    let screenRenders = 0;
    let send: (p: Progress) => void = () => {};
    let finish: (r: Result<number>) => void = () => {};
    let run: ReturnType<typeof useProgress>["run"] | null = null;
    function Screen() {
      screenRenders += 1;
      run = useProgress().run;
      return <p>screen</p>;
    }
    render(
      <ProgressProvider>
        <Screen />
        <ProgressPanel />
      </ProgressProvider>,
    );
    let outcome: Promise<Result<number>> | null = null;
    act(() => {
      outcome = run!("import", "Importing big.bin", (opId, onProgress) => {
        send = (p) => onProgress({ ...p, opId });
        return new Promise((resolve) => (finish = resolve));
      });
    });
    const rendersAtStart = screenRenders;
    for (const done of [10, 50, 90]) {
      await act(async () => {
        send(tick("", done));
        await frame();
      });
      expect(screen.getByTestId("progress-overall").getAttribute("value")).toBe(String(done));
    }
    expect(screenRenders).toBe(rendersAtStart);
    await act(async () => {
      finish({ ok: true, value: 1 });
      await outcome;
    });
    expect(screen.getByTestId("progress-panel").getAttribute("data-state")).toBe("done");
    expect(screenRenders).toBe(rendersAtStart);
  });
});
