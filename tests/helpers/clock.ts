/** A fake clock for tests that need time to pass without waiting (Date.now only). */
export class FakeTime implements Disposable {
  #now: number;
  readonly #original = Date.now;

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
    Date.now = () => this.#now;
  }

  tick(ms: number): void {
    this.#now += ms;
  }

  [Symbol.dispose](): void {
    Date.now = this.#original;
  }
}
