import { describe, expect, it } from 'vitest';
import { formatPath, PathSyntaxError, parsePath, selectPath } from '../src/index.js';

function select(doc: unknown, path: string): string[] {
  return selectPath(doc, parsePath(path), { $: doc }).map((m) => formatPath(m.keys));
}

const doc = {
  a: { b: 1, 'x-y': 2, list: [{ ssn: 's1', n: 1 }, { ssn: 's2' }, { other: 3 }] },
  rows: [
    { ssn: '111', password: 'p1' },
    { ssn: '222', nested: { password: 'p2' } },
  ],
  password: 'top',
  'x-y': 'dash',
  "it's": 'quote',
};

describe('parsePath', () => {
  it.each([
    ['$', 0],
    ['$.a.b', 2],
    ["$['x-y']", 1],
    ['$["x-y"]', 1],
    ['$.rows[*].ssn', 3],
    ['$..password', 1],
    ['$..*', 1],
    ['$..[0]', 1],
    ['$.a[0]', 2],
    ['$.a[-1]', 2],
    ["$.a['b','c']", 2],
    ['$.a[0, 2]', 2],
    ['$.ünïcode', 1],
    ["$['it\\'s']", 1],
  ])('parses %s', (source, segments) => {
    expect(parsePath(source).segments).toHaveLength(segments);
  });

  it.each([
    ['', 'starts with "$"'],
    ['a.b', 'starts with "$"'],
    ['$.', 'missing'],
    ['$.x-y', '"-" in a dotted member name'],
    ['$[', 'unterminated'],
    ["$['abc", 'unterminated quoted name'],
    ['$[?(@.a)]', 'filter expressions are not supported'],
    ['$[0:2]', 'slices are not supported'],
    ['$.a b', 'unexpected " "'],
    ['$[abc]', 'unexpected "a" in brackets'],
    ['$.1abc', 'cannot start a member name'],
    ['$[0 1]', 'expected "," or "]"'],
  ])('rejects %j (%s)', (source, message) => {
    expect(() => parsePath(source)).toThrow(PathSyntaxError);
    expect(() => parsePath(source)).toThrow(message);
  });
});

describe('selectPath', () => {
  it('selects the root', () => expect(select(doc, '$')).toEqual(['$']));
  it('selects a member chain', () => expect(select(doc, '$.a.b')).toEqual(['$.a.b']));
  it('selects bracketed names', () => {
    expect(select(doc, "$['x-y']")).toEqual(["$['x-y']"]);
    expect(select(doc, "$.a['x-y']")).toEqual(["$.a['x-y']"]);
    expect(select(doc, "$['it\\'s']")).toEqual(["$['it\\'s']"]);
  });
  it('selects every element with [*]', () =>
    expect(select(doc, '$.rows[*].ssn')).toEqual(['$.rows[0].ssn', '$.rows[1].ssn']));
  it('selects every member with .*', () =>
    expect(select(doc, '$.rows[0].*')).toEqual(['$.rows[0].ssn', '$.rows[0].password']));
  it('selects descendants at any depth', () => {
    expect(select(doc, '$..password')).toEqual(['$.password', '$.rows[0].password', '$.rows[1].nested.password']);
    expect(select(doc, '$.a..ssn')).toEqual(['$.a.list[0].ssn', '$.a.list[1].ssn']);
  });
  it('selects indices, negative indices and unions', () => {
    expect(select(doc, '$.a.list[1].ssn')).toEqual(['$.a.list[1].ssn']);
    expect(select(doc, '$.a.list[-1]')).toEqual(['$.a.list[2]']);
    expect(select(doc, '$.a.list[0,2]')).toEqual(['$.a.list[0]', '$.a.list[2]']);
    expect(select(doc, "$.rows[0]['ssn','password']")).toEqual(['$.rows[0].ssn', '$.rows[0].password']);
  });
  it('selects nothing where nothing matches', () => {
    expect(select(doc, '$.nope')).toEqual([]);
    expect(select(doc, '$.a.b.c')).toEqual([]);
    expect(select(doc, '$.a.list[9]')).toEqual([]);
    expect(select(doc, '$.password[0]')).toEqual([]);
    expect(select('text', '$.a')).toEqual([]);
  });
  it('reports a value reached twice once', () => {
    expect(select(doc, "$.rows[0]['ssn','ssn']")).toEqual(['$.rows[0].ssn']);
    expect(select({ a: { a: 1 } }, '$..a')).toEqual(['$.a', '$.a.a']);
  });
  it('does not follow inherited properties', () => {
    expect(select({}, '$.constructor')).toEqual([]);
    expect(select({}, '$.__proto__')).toEqual([]);
  });
});
