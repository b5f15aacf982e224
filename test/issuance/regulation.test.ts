import { describe, expect, it } from 'vitest';
import { regCfLimitCents, restrictionFor } from '../../src/issuance/subscriptions/regulation.ts';

const usd = (dollars: number) => dollars * 100;

describe('Reg CF investment limit (17 CFR 227.100(a)(2))', () => {
  it('gives the $2,500 floor when 5 % of the greater figure is less', () => {
    expect(regCfLimitCents(usd(30_000), usd(20_000))).toBe(usd(2_500));
    expect(regCfLimitCents(usd(50_000), usd(0))).toBe(usd(2_500));
    expect(regCfLimitCents(usd(49_999), usd(10_000))).toBe(usd(2_500));
  });

  it('gives 5 % of the greater of income and net worth when either is under $124,000', () => {
    expect(regCfLimitCents(usd(60_000), usd(80_000))).toBe(usd(4_000));
    expect(regCfLimitCents(usd(123_999), usd(200_000))).toBe(usd(10_000));
    expect(regCfLimitCents(usd(500_000), usd(100_000))).toBe(usd(25_000));
  });

  it('gives 10 % of the greater when both are at least $124,000, capped at $124,000', () => {
    expect(regCfLimitCents(usd(124_000), usd(124_000))).toBe(usd(12_400));
    expect(regCfLimitCents(usd(200_000), usd(150_000))).toBe(usd(20_000));
    expect(regCfLimitCents(usd(1_240_000), usd(130_000))).toBe(usd(124_000));
    expect(regCfLimitCents(usd(5_000_000), usd(2_000_000))).toBe(usd(124_000));
  });
});

describe('resale restriction', () => {
  it('restricts Reg D, Reg CF and Reg S shares for a year, not Reg A', () => {
    expect(restrictionFor('reg_d_506c', '2026-11-21')).toEqual({ restricted: true, until: '2027-11-21' });
    expect(restrictionFor('reg_cf', '2028-02-29')).toEqual({ restricted: true, until: '2029-03-01' });
    expect(restrictionFor('reg_a_tier_2', '2026-11-21')).toEqual({ restricted: false, until: null });
  });
});
