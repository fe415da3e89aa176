/**
 * What follows the platform: the browser opener of `mcp-warden ui --open` and the Docker engine
 * socket found when DOCKER_HOST is unset (README "Platforms").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { browserOpener } from '../../src/cli/ui-command.js';
import { defaultSocketPath } from '../../src/adapters/docker/docker-engine.js';

describe('platform', () => {
  it('opens URLs with open on macOS and xdg-open elsewhere', () => {
    assert.equal(browserOpener('darwin'), 'open');
    assert.equal(browserOpener('linux'), 'xdg-open');
  });

  it("finds /var/run/docker.sock first, then Docker Desktop's sockets", () => {
    const home = '/Users/ann';
    const only = (...present: string[]) => defaultSocketPath((p) => present.includes(p), home);
    assert.equal(only('/var/run/docker.sock', `${home}/.docker/run/docker.sock`), '/var/run/docker.sock');
    assert.equal(only(`${home}/.docker/run/docker.sock`), `${home}/.docker/run/docker.sock`);
    assert.equal(
      only(`${home}/Library/Containers/com.docker.docker/Data/docker.raw.sock`),
      `${home}/Library/Containers/com.docker.docker/Data/docker.raw.sock`,
    );
    assert.equal(only(), '/var/run/docker.sock');
  });
});
