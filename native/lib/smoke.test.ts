import { expect } from 'chai';
import { placeholder } from './index.js';
describe('smoke', () => { it('runs TypeScript tests', () => { expect(placeholder).to.equal(1); }); });
