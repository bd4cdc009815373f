#!/usr/bin/perl
# The perl sample: POSIX and Encode, the two modules a binary-only capture misses.
use strict;
use warnings;
use POSIX qw(strftime floor setlocale LC_ALL);
use Encode qw(encode decode);

setlocale(LC_ALL, "");
my $word = decode('UTF-8', "caf\xc3\xa9");
my $utf16 = join ' ', map { sprintf '%02x', ord } split //, encode('UTF-16BE', $word);
print strftime('%Y-%m-%d', gmtime(86400 * 365)), "\n";
print floor(7.9), "\n";
print length($word), " characters, UTF-16BE: $utf16\n";
